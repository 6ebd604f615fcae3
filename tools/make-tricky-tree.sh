#!/bin/sh
# Builds the tree of tricky cases that drover's NAR and add tests compare against Nix.
# Usage: make-tricky-tree.sh DIR [--big]   (--big adds a 100 MB file)
set -eu
d=$1
[ -e "$d" ] && { echo "make-tricky-tree: $d exists" >&2; exit 2; }
mkdir -p "$d"
cd "$d"
: > empty-file
mkdir empty-dir
printf 'hello\n' > plain
printf '#!/bin/sh\necho hi\n' > exec.sh && chmod 755 exec.sh
: > empty-exec && chmod 700 empty-exec
printf 'exactly8' > eight-bytes
printf 'seven77' > seven-bytes
ln -s plain rel-link
ln -s /etc/passwd abs-link
ln -s does/not/exist dangling-link
ln -s empty-dir dir-link
printf 'space\n' > 'name with spaces'
printf 'utf8\n' > 'ünïcødé-名前-😀'
mkdir -p deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p
printf 'deep\n' > deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/leaf
# Sorting is by bytes: upper case before lower, '-' before digits, UTF-8 after ASCII.
for n in B a A b 0 - _ z Z 'é' '.hidden'; do printf '%s\n' "$n" > "sort-$n"; done
head -c 70000 /dev/zero | tr '\0' 'x' > medium
if [ "${2:-}" = --big ]; then
  # 100 MB of varied bytes, deterministic, so the hash is stable across machines.
  i=0; : > big
  while [ $i -lt 100 ]; do head -c 1048576 /dev/zero | tr '\0' "$(printf "\\$(printf %o $((i % 200 + 33)))")" >> big; i=$((i+1)); done
fi
