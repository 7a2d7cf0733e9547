#!/bin/sh
# Builds and runs the consumer program with nothing but pkg-config and the compiler, against an install
# prefix: CXX=<compiler> pkg_config_consumer.sh PREFIX PKGCONFIG_DIR SOURCE OUTPUT VERSION
# Exit 77 (skipped) when pkg-config is not installed.
set -eu
prefix=$1 pcdir=$2 source=$3 output=$4 version=$5
command -v pkg-config >/dev/null 2>&1 || { echo "pkg-config not found"; exit 77; }
PKG_CONFIG_PATH="$prefix/$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
found=$(pkg-config --modversion robustxlt)
if [ "$found" != "$version" ]; then
  echo "pkg-config reports robustxlt $found, expected $version"
  exit 1
fi
cflags=$(pkg-config --cflags robustxlt)
libs=$(pkg-config --libs robustxlt)
echo "pkg-config --cflags robustxlt: $cflags"
case " $cflags " in
  *" -I$prefix/"*|*" -I$(cd "$prefix" && pwd -P)/"*) ;;
  *) echo "the include directory is not inside the install prefix $prefix"; exit 1 ;;
esac
# shellcheck disable=SC2086
"$CXX" -std=c++17 -O2 -Wall -Wextra -Wpedantic -Werror $cflags "$source" -o "$output" $libs
"$output"
