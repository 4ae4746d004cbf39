"""Builds libsqz with the repository's CMake (tests and perf off) and bundles
it into the wheel as sqz/lib/libsqz.so; the Python code loads it with ctypes
and never compiles against torch.

Environment:
  SQZ_PREBUILT_LIBRARY=/path/libsqz.so  bundle this file instead of building
  SQZ_CMAKE_ARGS="-DSQZ_WITH_CUDA=OFF"   extra CMake arguments
  SQZ_BUILD_DIR=/path                    CMake build directory (default python/build/cmake)
"""
import os
import shlex
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build_libsqz():
    pre = os.environ.get("SQZ_PREBUILT_LIBRARY")
    if pre:
        return os.path.realpath(pre)
    if not os.path.exists(os.path.join(ROOT, "CMakeLists.txt")):
        raise RuntimeError("sqz: building the wheel needs the sqz source tree around python/ (%s has no "
                           "CMakeLists.txt); or set SQZ_PREBUILT_LIBRARY=/path/libsqz.so" % ROOT)
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("sqz: cmake not found (apt-get install cmake ninja-build, or pip install cmake ninja)")
    bdir = os.environ.get("SQZ_BUILD_DIR") or os.path.join(HERE, "build", "cmake")
    args = [cmake, "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release", "-DSQZ_BUILD_TESTS=OFF",
            "-DSQZ_BUILD_PERF=OFF"]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    if shutil.which("ccache"):
        args += ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache",
                 "-DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"]
    args += shlex.split(os.environ.get("SQZ_CMAKE_ARGS", ""))
    if os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
        args = [a for a in args if a not in ("-G", "Ninja")]  # generator is fixed at first configure
    subprocess.check_call(args)
    subprocess.check_call([cmake, "--build", bdir, "--target", "sqz", "-j", str(os.cpu_count() or 2)])
    return os.path.realpath(os.path.join(bdir, "libsqz.so"))


class BuildPyWithLibsqz(build_py):
    def run(self):
        super().run()
        lib = build_libsqz()
        dest = os.path.join(self.build_lib, "sqz", "lib")
        os.makedirs(dest, exist_ok=True)
        shutil.copyfile(lib, os.path.join(dest, "libsqz.so"))


class BinaryDistribution(Distribution):
    def has_ext_modules(self):  # a platform wheel: it carries libsqz.so
        return True


setup(cmdclass={"build_py": BuildPyWithLibsqz}, distclass=BinaryDistribution)
