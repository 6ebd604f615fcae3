#!/usr/bin/env node
// CommonJS (bin/package.json): see @drover/store's bin/launch.cjs.
require('@drover/store/launch')(__dirname);
