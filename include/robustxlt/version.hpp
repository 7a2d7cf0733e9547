#pragma once
// Library version. CMakeLists.txt reads ROBUSTXLT_VERSION_STRING from here for the package version.

#define ROBUSTXLT_VERSION_MAJOR 0
#define ROBUSTXLT_VERSION_MINOR 2
#define ROBUSTXLT_VERSION_PATCH 0
#define ROBUSTXLT_VERSION_STRING "0.2.0"
// Single comparable number: major * 10000 + minor * 100 + patch.
#define ROBUSTXLT_VERSION \
  (ROBUSTXLT_VERSION_MAJOR * 10000 + ROBUSTXLT_VERSION_MINOR * 100 + ROBUSTXLT_VERSION_PATCH)

namespace robustxlt {
inline constexpr int version_major = ROBUSTXLT_VERSION_MAJOR;
inline constexpr int version_minor = ROBUSTXLT_VERSION_MINOR;
inline constexpr int version_patch = ROBUSTXLT_VERSION_PATCH;
inline constexpr const char* version_string = ROBUSTXLT_VERSION_STRING;
}  // namespace robustxlt
