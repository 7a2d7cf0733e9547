# Conan 2 recipe that stands for a header-only dependency installed by the system's package manager
# (Debian 12: libeigen3-dev, xtl-dev, libxsimd-dev, libxtensor-dev), so `conan create .` resolves robustxlt's
# requirements without a remote. Exported once per dependency, under the user `system`:
#
#   conan export conan/system --name eigen --version 3.4.0 --user system
#
# and selected by the [replace_requires] section of the conan/debian12 profile. The package holds no files:
# it checks that the system's CMake config file for the dependency exists and has the exported version,
# and tells CMakeDeps to generate nothing, so a consumer's find_package() (and robustxlt's own
# find_dependency()) uses the system's config file and its target.
import glob
import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.files import load

required_conan_version = ">=2.0"

# Conan Center name -> (CMake package name, CMake target, config-file locations on Debian/Ubuntu).
PACKAGES = {
    "eigen": ("Eigen3", "Eigen3::Eigen", ["/usr/share/eigen3/cmake"]),
    "xtl": ("xtl", "xtl", ["/usr/share/cmake/xtl", "/usr/lib/*/cmake/xtl"]),
    "xsimd": ("xsimd", "xsimd", ["/usr/lib/*/cmake/xsimd", "/usr/share/cmake/xsimd"]),
    "xtensor": ("xtensor", "xtensor", ["/usr/lib/*/cmake/xtensor", "/usr/share/cmake/xtensor"]),
}


class SystemHeaderLibrary(ConanFile):
    description = "A header-only library found where the system's package manager installed it"
    package_type = "header-library"
    settings = "os"

    def _config_version_file(self):
        cmake_name = PACKAGES[self.name][0]
        for pattern in PACKAGES[self.name][2]:
            for folder in sorted(glob.glob(pattern)):
                candidate = os.path.join(folder, cmake_name + "ConfigVersion.cmake")
                if os.path.isfile(candidate):
                    return candidate
        return None

    def validate(self):
        if self.name not in PACKAGES:
            raise ConanInvalidConfiguration(
                "conan/system: no system mapping for '%s' (known: %s)" % (self.name, ", ".join(sorted(PACKAGES))))
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration("conan/system: the mapping names Debian/Ubuntu paths; os is %s"
                                            % self.settings.os)
        path = self._config_version_file()
        if path is None:
            raise ConanInvalidConfiguration(
                "conan/system: %s is not installed: no %sConfigVersion.cmake under %s (install it with apt)"
                % (self.name, PACKAGES[self.name][0], " or ".join(PACKAGES[self.name][2])))
        found = re.search(r'set\(PACKAGE_VERSION "([^"]+)"\)', load(self, path))
        if found is None or found.group(1) != str(self.version):
            raise ConanInvalidConfiguration(
                "conan/system: %s was exported as version %s, but %s says %s"
                % (self.name, self.version, path, found.group(1) if found else "no version"))

    def package_id(self):
        self.info.clear()

    def package_info(self):
        cmake_name, cmake_target, _ = PACKAGES[self.name]
        self.cpp_info.set_property("cmake_file_name", cmake_name)
        self.cpp_info.set_property("cmake_target_name", cmake_target)
        self.cpp_info.set_property("cmake_find_mode", "none")
        self.cpp_info.includedirs = []
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
