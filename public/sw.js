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
      caches.match(APP_SHELL, { cacheName: CACHE }).then((cached) => cached || fetch(request)),
    );
    return;
  }
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const cached = await cache.match(request, { ignoreSearch: true });
      if (cached) {
        return cached;
      }
      const response = await fetch(request);
      if (response.ok) {
        await cache.put(request, response.clone());
      }
      return response;
    })(),
  );
});
