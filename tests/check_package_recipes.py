#!/usr/bin/env python3
"""Checks the Conan recipe and the vcpkg port against the CMake package they wrap.

It checks what the recipes must agree on with the CMake package, and needs no client: there is no vcpkg
client where the tests run, so for vcpkg this is all that is checked; the Conan recipe is also run for real
by `conan create` (tests/package_consumer/conan_create.sh) when a Conan 2 client is installed.

  conan   conanfile.py and test_package/ parse; the recipe is a header-only package whose id ignores the
          settings, reads its version from include/robustxlt/version.hpp, requires exactly the packages
          cmake/robustxltConfig.cmake.in finds (with the same minimum versions), copies the headers and
          exposes the CMake names the install tree exports.
  vcpkg   vcpkg.json and ports/robustxlt/vcpkg.json parse, carry the version of version.hpp and depend on
          the ports of the packages robustxltConfig.cmake.in finds; the portfile's configure options are
          options of CMakeLists.txt, and configuring and installing with exactly those options (as
          vcpkg_cmake_configure / vcpkg_cmake_install would) puts robustxltConfig.cmake in the portfile's
          CONFIG_PATH and builds none of the project's own programs.

Usage: check_package_recipes.py conan SOURCE_DIR [INSTALL_PREFIX]
       check_package_recipes.py vcpkg SOURCE_DIR WORK_DIR CMAKE
Exits 1 with a list of problems, 0 when everything holds.
"""
import ast
import json
import os
import re
import shutil
import subprocess
import sys

# CMake package found by robustxltConfig.cmake.in -> (Conan Center reference name, vcpkg port names).
# OpenMP comes with the compiler, not from a package manager.
PACKAGES = {
    "Eigen3": ("eigen", ["eigen3"]),
    "xtl": ("xtl", ["xtl"]),
    "xsimd": ("xsimd", ["xsimd"]),
    "xtensor": ("xtensor", ["xtensor"]),
}
COMPILER_PROVIDED = {"OpenMP"}

problems = []


def problem(message):
    problems.append(message)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def library_version(src):
    """MAJOR.MINOR.PATCH from the three macros of version.hpp (not from the string the recipes parse)."""
    text = read(os.path.join(src, "include", "robustxlt", "version.hpp"))
    parts = []
    for which in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(r"#define ROBUSTXLT_VERSION_%s (\d+)" % which, text)
        if not m:
            sys.exit("version.hpp: no ROBUSTXLT_VERSION_%s" % which)
        parts.append(m.group(1))
    return ".".join(parts)


def config_dependencies(src):
    """{package: minimum version or None} from the find_dependency calls of robustxltConfig.cmake.in."""
    text = read(os.path.join(src, "cmake", "robustxltConfig.cmake.in"))
    deps = {}
    for m in re.finditer(r"find_dependency\(\s*(\w+)([^)]*)\)", text):
        version = re.match(r"\s*(\d+(?:\.\d+)*)", m.group(2))
        deps[m.group(1)] = version.group(1) if version else None
    if not deps:
        sys.exit("robustxltConfig.cmake.in: no find_dependency calls found")
    unknown = set(deps) - set(PACKAGES) - COMPILER_PROVIDED
    if unknown:
        problem("robustxltConfig.cmake.in finds %s, which this check cannot map to Conan and vcpkg names: "
                "add it to PACKAGES" % sorted(unknown))
    return deps


def const(node):
    return node.value if isinstance(node, ast.Constant) else None


def is_self_attr(node, *names):
    """node is self.<names[0]>.<names[1]>..."""
    for name in reversed(names):
        if not (isinstance(node, ast.Attribute) and node.attr == name):
            return False
        node = node.value
    return isinstance(node, ast.Name) and node.id == "self"


def calls(func):
    return [n for n in ast.walk(func) if isinstance(n, ast.Call)]


def check_conan(src, prefix):
    path = os.path.join(src, "conanfile.py")
    tree = ast.parse(read(path), path)
    classes = [c for c in tree.body if isinstance(c, ast.ClassDef)
               and any(isinstance(b, ast.Name) and b.id == "ConanFile" for b in c.bases)]
    if len(classes) != 1:
        sys.exit("conanfile.py: expected one ConanFile class, found %d" % len(classes))
    cls = classes[0]
    attrs = {t.id: s.value for s in cls.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)}
    methods = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}

    expect = {"name": "robustxlt", "package_type": "header-library", "no_copy_source": True}
    for key, value in expect.items():
        got = const(attrs[key]) if key in attrs else "<missing>"
        if got != value:
            problem("conanfile.py: %s must be %r, got %r" % (key, value, got))
    sources = [const(e) for e in attrs["exports_sources"].elts] if "exports_sources" in attrs else []
    if "include/*" not in sources:
        problem("conanfile.py: exports_sources must export include/*, got %r" % sources)
    missing = [m for m in ("set_version", "requirements", "package_id", "package", "package_info") if m not in methods]
    if missing:
        problem("conanfile.py: no %s method" % ", ".join(m + "()" for m in missing))
        return

    # package_id(): self.info.clear(), so one package serves every configuration.
    if not any(is_self_attr(c.func, "info", "clear") for c in calls(methods["package_id"])):
        problem("conanfile.py: package_id() must call self.info.clear()")

    # set_version(): apply the recipe's own pattern to version.hpp.
    strings = [const(n) for n in ast.walk(methods["set_version"]) if isinstance(const(n), str)]
    if not {"include", "robustxlt", "version.hpp"} <= set(strings):
        problem("conanfile.py: set_version() must read include/robustxlt/version.hpp, uses %r" % strings)
    patterns = [s for s in strings if "ROBUSTXLT_VERSION_STRING" in s]
    version = library_version(src)
    header = read(os.path.join(src, "include", "robustxlt", "version.hpp"))
    if len(patterns) != 1:
        problem("conanfile.py: set_version() must search version.hpp for ROBUSTXLT_VERSION_STRING")
    else:
        m = re.search(patterns[0], header)
        if not m or m.group(1) != version:
            problem("conanfile.py: set_version() reads %r from version.hpp, expected %s"
                    % (m.group(1) if m else None, version))

    # requirements(): exactly the packages of robustxltConfig.cmake.in, same minimum versions.
    required = {}
    for c in calls(methods["requirements"]):
        if is_self_attr(c.func, "requires") and c.args and isinstance(const(c.args[0]), str):
            name, _, spec = const(c.args[0]).partition("/")
            required[name] = spec
    deps = config_dependencies(src)
    expected = {PACKAGES[p][0]: v for p, v in deps.items() if p in PACKAGES}
    if set(required) != set(expected):
        problem("conanfile.py: requirements() requires %s, robustxltConfig.cmake.in needs %s"
                % (sorted(required), sorted(expected)))
    for name, minimum in expected.items():
        lower = re.match(r"\[>=([0-9.]+)", required.get(name, ""))
        if minimum and (not lower or lower.group(1) != minimum):
            problem("conanfile.py: %s must be required as [>=%s ...] like find_dependency, got %r"
                    % (name, minimum, required.get(name)))

    # package(): headers and licence.
    copied = [const(c.args[1]) for c in calls(methods["package"]) if isinstance(c.func, ast.Name)
              and c.func.id == "copy" and len(c.args) > 1]
    for pattern in ("*.hpp", "LICENSE*"):
        if pattern not in copied:
            problem("conanfile.py: package() must copy %r, copies %r" % (pattern, copied))

    # package_info(): the CMake names the install tree exports, and no library or binary directories.
    props = {}
    cleared = set()
    for node in ast.walk(methods["package_info"]):
        if isinstance(node, ast.Call) and is_self_attr(node.func, "cpp_info", "set_property") and len(node.args) == 2:
            props[const(node.args[0])] = const(node.args[1])
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List) and not node.value.elts:
            for t in node.targets:
                if isinstance(t, ast.Attribute) and is_self_attr(t.value, "cpp_info"):
                    cleared.add(t.attr)
    for key, value in (("cmake_file_name", "robustxlt"), ("cmake_target_name", "robustxlt::robustxlt")):
        if props.get(key) != value:
            problem("conanfile.py: package_info() must set %s to %r, got %r" % (key, value, props.get(key)))
    for d in ("bindirs", "libdirs"):
        if d not in cleared:
            problem("conanfile.py: package_info() must set cpp_info.%s = []" % d)
    if prefix:
        targets = os.path.join(prefix, "share", "cmake", "robustxlt", "robustxltTargets.cmake")
        if not os.path.exists(targets):
            problem("install tree has no %s" % targets)
        elif "add_library(%s INTERFACE IMPORTED)" % props.get("cmake_target_name") not in read(targets):
            problem("the install tree does not export %s, the recipe's cmake_target_name"
                    % props.get("cmake_target_name"))

    # test_package/: a consumer recipe plus a CMake project that finds the package.
    tp = os.path.join(src, "test_package")
    tp_tree = ast.parse(read(os.path.join(tp, "conanfile.py")), "test_package/conanfile.py")
    if not any(isinstance(n, ast.Attribute) and n.attr == "tested_reference_str" for n in ast.walk(tp_tree)):
        problem("test_package/conanfile.py must require self.tested_reference_str")
    cml = read(os.path.join(tp, "CMakeLists.txt"))
    if not re.search(r"find_package\(\s*robustxlt\b", cml) or "robustxlt::robustxlt" not in cml:
        problem("test_package/CMakeLists.txt must find_package(robustxlt) and link robustxlt::robustxlt")
    for f in re.findall(r"add_executable\(\s*\w+\s+([^)\s]+)", cml):
        if not os.path.exists(os.path.join(tp, f)):
            problem("test_package/CMakeLists.txt builds %s, which does not exist" % f)


def check_vcpkg(src, work, cmake):
    version = library_version(src)
    deps = config_dependencies(src)
    expected = sorted(port for p in deps if p in PACKAGES for port in PACKAGES[p][1])
    manifests = {}
    for rel in ("vcpkg.json", os.path.join("ports", "robustxlt", "vcpkg.json")):
        try:
            manifests[rel] = json.loads(read(os.path.join(src, rel)))
        except (OSError, ValueError) as e:
            problem("%s: %s" % (rel, e))
    for rel, m in manifests.items():
        if m.get("name") != "robustxlt":
            problem("%s: name must be 'robustxlt', got %r" % (rel, m.get("name")))
        if m.get("version") != version:
            problem("%s: version must be %s (version.hpp), got %r" % (rel, version, m.get("version")))
        names = [d if isinstance(d, str) else d.get("name") for d in m.get("dependencies", [])]
        host = [d.get("name") for d in m.get("dependencies", []) if isinstance(d, dict) and d.get("host")]
        runtime = sorted(n for n in names if n not in host)
        if runtime != expected:
            problem("%s: dependencies %s, robustxltConfig.cmake.in needs %s" % (rel, runtime, expected))
        if rel != "vcpkg.json" and sorted(host) != ["vcpkg-cmake", "vcpkg-cmake-config"]:
            problem("%s: host dependencies must be vcpkg-cmake and vcpkg-cmake-config, got %s" % (rel, sorted(host)))

    portfile = read(os.path.join(src, "ports", "robustxlt", "portfile.cmake"))
    configure = re.search(r"vcpkg_cmake_configure\((.*?)\n\)", portfile, re.S)
    config_path = re.search(r"vcpkg_cmake_config_fixup\(\s*CONFIG_PATH\s+(\S+?)\s*\)", portfile)
    for call in ("vcpkg_cmake_install()", "vcpkg_install_copyright(", 'file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")'):
        if call not in portfile:
            problem("portfile.cmake: missing %s" % call)
    if not configure or not config_path:
        problem("portfile.cmake: needs vcpkg_cmake_configure(...) and vcpkg_cmake_config_fixup(CONFIG_PATH ...)")
        return
    options = re.findall(r"-D(\w+)=(\S+)", configure.group(1))
    declared = set(re.findall(r"^option\((\w+)", read(os.path.join(src, "CMakeLists.txt")), re.M))
    for name, _ in options:
        if name not in declared:
            problem("portfile.cmake: -D%s is not an option() of CMakeLists.txt" % name)
    for name in ("ROBUSTXLT_BUILD_TESTS", "ROBUSTXLT_BUILD_BENCHMARKS", "ROBUSTXLT_BUILD_EXAMPLES"):
        if (name, "OFF") not in options:
            problem("portfile.cmake: must pass -D%s=OFF" % name)
    if problems:
        return

    # Configure and install with exactly the portfile's options, as vcpkg would.
    build, prefix = os.path.join(work, "build"), os.path.join(work, "prefix")
    shutil.rmtree(work, ignore_errors=True)
    for cmd in ([cmake, "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release"] + ["-D%s=%s" % o for o in options],
                [cmake, "--build", build],
                [cmake, "--install", build, "--prefix", prefix]):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if r.returncode != 0:
            problem("%s failed:\n%s" % (" ".join(cmd), r.stdout[-3000:]))
            return
    for f in ("robustxltConfig.cmake", "robustxltConfigVersion.cmake", "robustxltTargets.cmake"):
        if not os.path.exists(os.path.join(prefix, config_path.group(1), f)):
            problem("portfile.cmake: CONFIG_PATH %s, but the install puts no %s there" % (config_path.group(1), f))
    if not os.path.exists(os.path.join(prefix, "include", "robustxlt", "robustxlt.hpp")):
        problem("the install with the portfile's options has no include/robustxlt/robustxlt.hpp")
    if "vcpkg_fixup_pkgconfig()" in portfile and not os.path.exists(os.path.join(prefix, "share", "pkgconfig", "robustxlt.pc")):
        problem("portfile.cmake fixes up pkg-config files, but the install has no share/pkgconfig/robustxlt.pc")
    built = [d for d in ("tests", "bench", "examples") if os.path.exists(os.path.join(build, d))]
    if built:
        problem("configuring with the portfile's options still adds %s" % built)


def main(argv):
    if len(argv) >= 3 and argv[1] == "conan":
        check_conan(os.path.abspath(argv[2]), argv[3] if len(argv) > 3 else None)
    elif len(argv) == 5 and argv[1] == "vcpkg":
        check_vcpkg(os.path.abspath(argv[2]), os.path.abspath(argv[3]), argv[4])
    else:
        sys.exit(__doc__)
    for p in problems:
        print("FAILED: " + p)
    if not problems:
        print("%s packaging files agree with the CMake package (version %s)" % (argv[1], library_version(argv[2])))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
