# Conan 2 recipe for robustxlt, a header-only library: `conan create .` from the repository root packages the
# headers of this checkout and runs test_package/. The version comes from include/robustxlt/version.hpp.
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class RobustxltConan(ConanFile):
    name = "robustxlt"
    description = "Header-only C++17 robust-training primitives for zero-shot cross-lingual transfer"
    license = "MIT"
    topics = ("nlp", "adversarial-training", "randomized-smoothing", "cross-lingual", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True
    exports_sources = "include/*", "LICENSE*"

    def set_version(self):
        header = load(self, os.path.join(self.recipe_folder, "include", "robustxlt", "version.hpp"))
        self.version = re.search(r'#define ROBUSTXLT_VERSION_STRING "([0-9.]+)"', header).group(1)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # The packages cmake/robustxltConfig.cmake.in finds with find_dependency, with the versions tested
        # (those of Debian 12) as lower bounds. From Conan Center by default; the conan/debian12 profile
        # replaces them with the system's packages (see conan/system/conanfile.py).
        self.requires("eigen/[>=3.3 <4]")
        self.requires("xtl/[>=0.7.2 <0.8]")
        self.requires("xsimd/[>=8.1.0 <9]")
        self.requires("xtensor/[>=0.24.3 <0.25]")

    def package_id(self):
        self.info.clear()

    def validate(self):
        if self.settings.get_safe("compiler.cppstd"):
            check_min_cppstd(self, 17)

    def package(self):
        copy(self, "LICENSE*", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "robustxlt")
        self.cpp_info.set_property("cmake_target_name", "robustxlt::robustxlt")
        self.cpp_info.set_property("pkg_config_name", "robustxlt")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
