#!/usr/bin/env bash
# Builds Tests/Fixtures/UserPackage as a user would: copied outside the repository, depending on
# this checkout by path, with every Swift block of README.md as a target of its own (they must compile). Prints the built executable's path (the UserPackageTests read it from
# SHOAL_USER_PACKAGE_BIN; `--print-path` prints it without building). The build folder stays in .build/user-package so a rebuild is quick.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${TMPDIR:-/tmp}/shoal-user-package"
if [ "${1:-}" = "--print-path" ]; then
  # Where the last build put the executable, without building again.
  echo "$(swift build --package-path "$work" --scratch-path "$root/.build/user-package" --show-bin-path)/user-training"
  exit 0
fi
rm -rf "$work"
mkdir -p "$work"
cp -R "$root/Tests/Fixtures/UserPackage/." "$work/"
# A path dependency is known by its folder's name, whatever the clone is called.
sed -i "s|SHOAL_PATH|$root|; s|SHOAL_IDENTITY|$(basename "$root" | tr '[:upper:]' '[:lower:]')|" "$work/Package.swift"
# Every Swift block of the README becomes a target of the same package: building it compiles them.
snippets=$(python3 "$root/scripts/readme_snippets.py" "$root/README.md" "$work" "$(basename "$root" | tr '[:upper:]' '[:lower:]')")
swift build --package-path "$work" --scratch-path "$root/.build/user-package" >&2
echo "$snippets" > "$work/readme-snippets"
echo "$(swift build --package-path "$work" --scratch-path "$root/.build/user-package" --show-bin-path)/user-training"
