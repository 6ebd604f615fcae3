# Native part of @drover/store, built by `npm ci` (node-gyp, with the .npmrc's nodedir=/usr).
{
  "targets": [
    {
      "target_name": "drover_native",
      "sources": ["native/addon.c", "native/fd-gather.c", "native/file-batch.c", "native/sync-fs.c", "native/path-meta.c", "native/hash-files.c", "native/hash-stream.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
