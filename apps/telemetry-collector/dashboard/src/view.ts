/** What every section of the dashboard implements. */
export interface ViewContext {
  /** The selected time window (`5m`). */
  window(): string;
  navigate(hash: string): void;
  /** Route parameters after the section name: `#/traces/<id>` → [`<id>`]. */
  params: string[];
  /** Query parameters after `?` in the hash: `#/traces?service=reviews`. */
  search: URLSearchParams;
}

export interface View {
  /** Fetches and redraws; called on mount, on a timer while live, and when the window changes. */
  refresh(signal: AbortSignal): Promise<void>;
  /** Milliseconds between live refreshes. */
  readonly intervalMs: number;
  destroy?(): void;
}

export type ViewFactory = (root: HTMLElement, ctx: ViewContext) => View;
