# Overlay port that builds robustxlt from the checkout containing it:
#   vcpkg install robustxlt --overlay-ports=<checkout>/ports
# A registry port would fetch a tagged release with vcpkg_from_github instead of this SOURCE_PATH.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# Header-only: one configuration is enough, nothing is compiled.
set(VCPKG_BUILD_TYPE release)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DROBUSTXLT_BUILD_TESTS=OFF
    -DROBUSTXLT_BUILD_BENCHMARKS=OFF
    -DROBUSTXLT_BUILD_EXAMPLES=OFF
    -DROBUSTXLT_INSTALL=ON
    -DROBUSTXLT_NATIVE=OFF
)
vcpkg_cmake_install()
# cmake --install puts the package configuration in share/cmake/robustxlt; vcpkg wants share/robustxlt.
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/robustxlt)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
