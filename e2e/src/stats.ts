/** The sum of one metric family's samples with these label values, from a proxy's /stats/prometheus. */
export async function metricSum(
  statsPort: number,
  family: string,
  labels: Record<string, string>,
): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${statsPort}/stats/prometheus`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${family}{`) && !line.startsWith(`${family} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
