#!/usr/bin/env bash
# Installs everything on scripts/packages.list that is missing: the Debian
# packages in one `apt-get install --no-install-recommends` (root only; a
# non-root user is told the command to run), the crates with
# `cargo install --locked`, and checks that the machine image's programs are
# there. `make run`, `make test` and the other scripts call it (or `need`,
# its one-program form). Idempotent and quiet when nothing is missing;
# stdout stays empty.
#
# usage: setup.sh [--check]   --check: only list what is missing, exit 1 if anything is
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

debs=()
crates=()
missing_image=()
while read -r kind name progs; do
  case "$kind" in
    apt) deb_installed "$name" || debs+=("$name") ;;
    image)
      if [ "$name" != - ]; then deb_installed "$name" || debs+=("$name"); fi
      for p in $progs; do
        [ "$p" = - ] || command -v "$p" >/dev/null 2>&1 || [ "$name" != - ] || missing_image+=("$p")
      done ;;
    crate)
      for p in $progs; do command -v "$p" >/dev/null 2>&1 || { crates+=("$name $p"); break; }; done ;;
    *) die "$PACKAGES_LIST: unknown kind '$kind' (apt, crate or image)" ;;
  esac
done < <(list_entries apt crate image)

[ ${#missing_image[@]} -eq 0 ] ||
  die "the machine image should ship ${missing_image[*]} (see $PACKAGES_LIST); install them by hand"
if [ "$check" = 1 ]; then
  [ ${#debs[@]} -eq 0 ] && [ ${#crates[@]} -eq 0 ] && exit 0
  [ ${#debs[@]} -eq 0 ] || log "missing Debian packages: ${debs[*]}"
  for c in "${crates[@]}"; do log "missing crate: ${c% *}"; done
  exit 1
fi
[ ${#debs[@]} -eq 0 ] || apt_install "${debs[@]}"
for c in "${crates[@]}"; do crate_install "${c% *}" "${c#* }"; done
exit 0
