import { startStalledServer } from '@mizzen/bookinfo-common/testing';
import { startServer as startReviews } from '@mizzen/bookinfo-reviews/server';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Bookinfo, LOCAL, startBookinfo } from './helpers.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('the product page, with real details, reviews and ratings behind a forward proxy', () => {
  let bi: Bookinfo;

  const page = async (headers: Record<string, string> = {}, base = bi.productpage.url) => {
    const res = await fetch(`${base}/productpage`, { headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    return res.text();
  };

  const signIn = async (username: string) => {
    const res = await fetch(`${bi.productpage.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username }).toString(),
      redirect: 'manual',
    });
    return res;
  };

  beforeAll(async () => {
    bi = await startBookinfo();
  });
  beforeEach(() => {
    bi.proxy.requests.length = 0;
    bi.routeReviews('v1');
  });
  afterAll(async () => {
    await bi?.close();
  });

  it('shows the book, its details and its reviews, asking details and reviews through HTTP_PROXY in absolute form', async () => {
    bi.routeReviews('v2');
    const html = await page({ 'x-request-id': 'req-7', traceparent: TRACEPARENT, cookie: 'theme=dark' });
    expect(html).toContain('<title>Simple Bookstore App</title>');
    expect(html).toContain('The Comedy of Errors');
    expect(html).toContain('<b>William Shakespeare</b>');
    for (const cell of ['paperback', '200', 'PublisherA', 'English', '1234567890', '123-1234567890']) {
      expect(html).toContain(`<td>${cell}</td>`);
    }
    expect(html).toContain(
      'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!',
    );
    expect(html).toContain('Reviewer2');
    expect(html).toContain('Reviews served by: <span class="podname">reviews-v2</span>');
    expect(html).toContain('<link rel="stylesheet" href="/static/bookinfo.css">');

    expect(bi.proxy.connects).toEqual([]);
    const targets = bi.proxy.requests.map((r) => r.target).sort();
    expect(targets).toEqual(['http://details:9080/details/0', 'http://reviews:9080/reviews/0']);
    for (const r of bi.proxy.requests) {
      expect(r.headers.host).toBe(new URL(r.target).host);
      expect(r.headers['x-request-id']).toBe('req-7');
      expect(r.headers.traceparent).toBe(TRACEPARENT);
      expect(r.headers.cookie).toBeUndefined();
      expect(r.headers['end-user']).toBeUndefined();
    }
  });

  it('draws black stars for reviews v2, red for v3, and none for v1', async () => {
    bi.routeReviews('v2');
    const black = await page();
    expect(black).toContain('stars-black');
    expect(black).not.toContain('stars-red');
    expect(black).toContain(
      '<span class="stars stars-black" role="img" aria-label="5 out of 5 stars">★★★★★</span>',
    );
    expect(black).toContain(
      '<span class="stars stars-black" role="img" aria-label="4 out of 5 stars">★★★★☆</span>',
    );

    bi.routeReviews('v3');
    const red = await page();
    expect(red).toContain('stars-red');
    expect(red).not.toContain('stars-black');

    bi.routeReviews('v1');
    const none = await page();
    expect(none).not.toContain('class="stars');
    expect(none).toContain('The play lacks thematic depth');
  });

  it('signs in, sends end-user on every call while signed in, and signs out', async () => {
    const login = await signIn('  jason ');
    expect(login.status).toBe(302);
    expect(login.headers.get('location')).toBe('/productpage');
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^user=jason; Path=\/; HttpOnly; SameSite=Lax$/);
    const session = cookie.split(';')[0]!;

    bi.routeReviews('v2');
    const html = await page({ cookie: `theme=dark; ${session}`, 'x-request-id': 'req-8' });
    expect(html).toContain('signed in as jason');
    expect(html).toContain('href="/logout"');
    expect(html).not.toContain('action="/login"');
    expect(bi.proxy.requests).toHaveLength(2);
    for (const r of bi.proxy.requests) {
      expect(r.headers['end-user']).toBe('jason');
      expect(r.headers['x-request-id']).toBe('req-8');
    }

    // The API calls carry it too, and the signed-in user wins over an end-user header from outside.
    bi.proxy.requests.length = 0;
    const api = await fetch(`${bi.productpage.url}/api/v1/products/0/reviews`, {
      headers: { cookie: session, 'end-user': 'mallory' },
    });
    expect(api.status).toBe(200);
    expect(bi.proxy.requests[0]?.headers['end-user']).toBe('jason');

    const logout = await fetch(`${bi.productpage.url}/logout`, {
      headers: { cookie: session },
      redirect: 'manual',
    });
    expect(logout.status).toBe(302);
    expect(logout.headers.get('location')).toBe('/productpage');
    expect(logout.headers.get('set-cookie')).toBe('user=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax');

    bi.proxy.requests.length = 0;
    const anonymous = await page();
    expect(anonymous).not.toContain('signed in as');
    expect(anonymous).toContain('<form class="login" method="post" action="/login">');
    expect(bi.proxy.requests.every((r) => r.headers['end-user'] === undefined)).toBe(true);
  });

  it('passes an end-user header from outside along when nobody is signed in', async () => {
    await page({ 'end-user': 'jason' });
    expect(bi.proxy.requests.map((r) => r.headers['end-user'])).toEqual(['jason', 'jason']);
  });

  it('refuses user names that cannot be a header value, and ignores forged cookies', async () => {
    for (const bad of ['', '   ', 'a'.repeat(65), 'line\nbreak', 'caf\u00e9']) {
      const res = await signIn(bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.headers.get('set-cookie')).toBeNull();
      expect(await res.text()).toContain('Cannot sign in');
    }
    const html = await page({ cookie: 'user=%0Aevil' });
    expect(html).not.toContain('signed in as');
    expect(bi.proxy.requests.every((r) => r.headers['end-user'] === undefined)).toBe(true);
  });

  it('escapes everything it did not write itself', async () => {
    const name = '<script>alert("hi")</script>';
    const login = await signIn(name);
    expect(login.status).toBe(302);
    const session = login.headers.get('set-cookie')!.split(';')[0]!;

    const evil = await startReviews({
      listen: LOCAL,
      logLevel: 'silent',
      proxy: { noProxy: '' },
      version: 'v1',
      podName: '<img src=x onerror=alert(1)>',
      clusterName: "o'brien & co",
      ratingsUrl: bi.ratings.url,
      ratingsTimeoutMs: 2500,
    });
    try {
      bi.proxy.route('reviews:9080', evil.url);
      const html = await page({ cookie: session });
      expect(html).not.toContain('<script>');
      expect(html).not.toContain('<img');
      expect(html).toContain('signed in as &lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt;');
      expect(html).toContain('<span class="podname">&lt;img src=x onerror=alert(1)&gt;</span>');
      expect(html).toContain('<span class="clustername">o&#39;brien &amp; co</span>');
      // The header value is the name as typed.
      expect(bi.proxy.requests.at(-1)?.headers['end-user']).toBe(name);
    } finally {
      await evil.close();
    }
  });

  it("shows Bookinfo's apologies, still with 200, when details or reviews cannot be reached", async () => {
    const gone = await startStalledServer();
    await gone.close();
    bi.proxy.route('details:9080', gone.url); // the proxy cannot connect: 503
    bi.proxy.route('reviews:9080', gone.url);
    try {
      const html = await page();
      expect(html).toContain('Sorry, product details are currently unavailable for this book.');
      expect(html).toContain('Sorry, product reviews are currently unavailable for this book.');
      expect(html).toContain('The Comedy of Errors');
      expect(html).not.toContain('<table');
    } finally {
      bi.proxy.route('details:9080', bi.details.url);
    }
    bi.routeReviews('v3');
    // A page whose proxy has no route for reviews at all (502) still shows the details.
    const lost = await bi.startProductpage({
      services: {
        details: 'http://details:9080',
        reviews: 'http://reviews-nowhere:9080',
        ratings: 'http://ratings:9080',
      },
    });
    const html = await page({}, lost.url);
    expect(html).toContain('<td>PublisherA</td>');
    expect(html).toContain('Sorry, product reviews are currently unavailable for this book.');
  });

  it('stops waiting for a service that does not answer within its timeout', async () => {
    const stalled = await startStalledServer();
    try {
      bi.proxy.route('reviews:9080', stalled.url);
      const impatient = await bi.startProductpage({ timeoutMs: 200 });
      const began = Date.now();
      const html = await page({}, impatient.url);
      expect(Date.now() - began).toBeLessThan(2000);
      expect(html).toContain('Sorry, product reviews are currently unavailable for this book.');
      expect(html).toContain('<td>PublisherA</td>');
    } finally {
      await stalled.close();
    }
  });

  it('serves an index page linking the product page, and its stylesheet from any directory', async () => {
    const index = await fetch(`${bi.productpage.url}/`);
    expect(index.status).toBe(200);
    const html = await index.text();
    expect(html).toContain('Simple Bookstore App');
    expect(html).toContain('href="/productpage"');

    const css = await fetch(`${bi.productpage.url}/static/bookinfo.css`);
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const sheet = await css.text();
    expect(sheet).toContain('.stars-red');
    expect(sheet).toContain('.stars-black');
    for (const path of ['/static/missing.css', '/static/..%2Fpackage.json', '/static/../package.json']) {
      expect((await fetch(`${bi.productpage.url}${path}`)).status, path).toBe(404);
    }
  });
});
