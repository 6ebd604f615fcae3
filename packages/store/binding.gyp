# Native part of @drover/store, built by `npm ci` (node-gyp, with the .npmrc's nodedir=/usr).
{
  "targets": [
    {
      "target_name": "fd_gather",
      "sources": ["native/fd-gather.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
