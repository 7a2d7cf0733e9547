#!/usr/bin/env bash
# Runs `conan create` on the recipe of this checkout, offline, as README's Conan section tells a user to:
# robustxlt's dependencies come from the system's packages through the conan/system recipe and the
# conan/debian12 profile, and test_package/ builds and runs a program that checks a perturber, a sampler,
# the aggregator and a metric. Works on a copy of the recipe in WORK_DIR with its own CONAN_HOME there, so
# neither the checkout nor the user's ~/.conan2 is touched, and with every remote disabled, so nothing can
# be fetched. Exits 77 (skipped) when no conan client is given.
#
# Usage: conan_create.sh CONAN SOURCE_DIR WORK_DIR
set -euo pipefail
conan="$1" src="$2" work="$3"
if [ -z "$conan" ] || [ "$conan" = "ROBUSTXLT_CONAN-NOTFOUND" ] || ! "$conan" --version >/dev/null 2>&1; then
  echo "conan_create: no Conan 2 client found (bash .ci/install-deps puts one in build/venv; or set" \
       "-DROBUSTXLT_CONAN=/path/to/conan): skipped"
  exit 77
fi
case "$("$conan" --version)" in
  "Conan version 2."*) ;;
  *) echo "conan_create: $conan is not Conan 2: $("$conan" --version)"; exit 1 ;;
esac

rm -rf "$work"
mkdir -p "$work/recipe"
cp "$src/conanfile.py" "$src"/LICENSE* "$work/recipe/"
cp -r "$src/include" "$work/recipe/include"
mkdir -p "$work/recipe/test_package"
cp "$src"/test_package/conanfile.py "$src"/test_package/CMakeLists.txt "$src"/test_package/test_package.cpp \
   "$work/recipe/test_package/"

export CONAN_HOME="$work/conan_home"
"$conan" profile detect >/dev/null 2>&1
for remote in $("$conan" remote list --format=json | "${PYTHON:-python3}" -c \
    'import json, sys; print(" ".join(r["name"] for r in json.load(sys.stdin)))'); do
  "$conan" remote disable "$remote" >/dev/null
done

# Export one system recipe per line of the profile's [replace_requires]: "eigen/*: eigen/3.4.0@system".
profile="$src/conan/debian12"
exported=0
while read -r name version; do
  "$conan" export "$src/conan/system" --name "$name" --version "$version" --user system
  exported=$((exported + 1))
done < <(sed -n 's|^[a-z_]*/\*: *\([a-z_]*\)/\([0-9.]*\)@system *$|\1 \2|p' "$profile")
if [ "$exported" -ne 4 ]; then
  echo "conan_create: expected 4 [replace_requires] lines of the form 'name/*: name/VERSION@system' in $profile, found $exported"
  exit 1
fi

"$conan" create "$work/recipe" -pr:h "$profile" --build=missing 2>&1 | tee "$work/create.log"
grep -q "from the Conan package: all checks passed" "$work/create.log" || {
  echo "conan_create: test_package did not report that all its checks passed"
  exit 1
}
