// LineCheck service worker: serves the kiosk from its cache, so it starts and inspects with no
// network after the first visit. One cache per build: a tablet runs one consistent version of
// page, wasm and kernels, never a mix.
//
// `cargo xtask` rewrites the next two lines after trunk builds (xtask/src/pwa.rs): the build's
// content hash and every file of the build. Left as they are, the worker still caches what the
// page loads, as it loads it.
const BUILD_VERSION = "dev";
const PRECACHE = [];

const CACHE = `linecheck-${BUILD_VERSION}`;
const SCOPE = new URL(self.registration.scope);
const APP_SHELL = new URL("./", SCOPE).href;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll([APP_SHELL, ...PRECACHE.map((path) => new URL(path, SCOPE).href)]);
      // The first version takes over at once. Later versions wait until the page asks
      // (between two parts, never in the middle of an inspection).
      if (!self.registration.active) {
        await self.skipWaiting();
      }
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith("linecheck-") && name !== CACHE) {
          await caches.delete(name);
        }
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "apply-update") {
    self.skipWaiting();
  }
});

// The kiosk is cross-origin isolated (its CPU backend's wasm threads need SharedArrayBuffer), and
// so is its detection worker, only if the page and the worker's script arrive with these headers.
// The server sends them on every response and the cache keeps them, but a cache filled through a
// server or proxy that dropped them would start the kiosk offline without isolation: whatever
// this worker answers gets them, added where missing (everything LineCheck loads is same-origin).
const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

function isolated(response) {
  const missing = Object.entries(ISOLATION_HEADERS).filter(
    ([name]) => !response.headers.has(name),
  );
  // An opaque or error response cannot be copied; nothing same-origin is one.
  if (missing.length === 0 || response.type === "opaque" || response.status === 0) {
    return response;
  }
  const headers = new Headers(response.headers);
  for (const [name, value] of missing) {
    headers.set(name, value);
  }
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

function isLive(url) {
  // The API and health checks must reach the server or fail; a cached answer would lie.
  const path = url.pathname.slice(SCOPE.pathname.length);
  return path.startsWith("api/") || path === "healthz";
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== SCOPE.origin || isLive(url)) {
    return;
  }
  if (request.mode === "navigate") {
    // Every page of the kiosk is the app shell of this build.
    event.respondWith(
      caches
        .match(APP_SHELL, { cacheName: CACHE })
        .then((cached) => cached || fetch(request))
        .then(isolated),
    );
    return;
  }
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const cached = await cache.match(request, { ignoreSearch: true });
      if (cached) {
        return isolated(cached);
      }
      const response = await fetch(request);
      if (response.ok) {
        await cache.put(request, response.clone());
      }
      return isolated(response);
    })(),
  );
});
