"""Build step: compile native/ through CMake into the package.

Why setuptools with a custom step rather than scikit-build-core: the native
library is optional. When gcc or cmake is missing or the build fails, the
package must still install and run on the Numba fallback, which a failing
scikit-build-core build does not allow. The step below runs CMake, copies
libpocketlm.so, its headers and (with a JDK) the JVM bridge into pocketlm/_lib (the source tree for
editable installs, the wheel otherwise), and on failure prints why and goes
on. POCKETLM_NO_NATIVE=1 skips it on purpose.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent


def build_native(dest: Path) -> None:
    if os.environ.get("POCKETLM_NO_NATIVE") == "1":
        print("pocketlm: POCKETLM_NO_NATIVE=1, skipping the native build", file=sys.stderr)
        return
    cmake = shutil.which("cmake")
    if cmake is None:
        print("pocketlm: cmake not found; installing without libpocketlm (Numba fallback)", file=sys.stderr)
        return
    build_dir = ROOT / "build" / "cmake"
    try:
        subprocess.run([cmake, "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                        "-DPLM_BUILD_TESTS=ON"], check=True)
        subprocess.run([cmake, "--build", str(build_dir), "-j", str(os.cpu_count() or 1)], check=True)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"pocketlm: native build failed ({e}); installing without libpocketlm (Numba fallback)",
              file=sys.stderr)
        return
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build_dir / "native" / "libpocketlm.so", dest / "libpocketlm.so")
    for header in ("pocketlm.h", "llm_inference_engine.h"):
        shutil.copy2(ROOT / "native" / "include" / header, dest / header)
    # the JVM side, when a JDK was found (bridge/CMakeLists.txt): the JNI library, the stub jar, its classpath, and
    # with kotlinc LiteRT-LM's Kotlin API (and Flow's core where the system's coroutines predate it)
    for name in ("libpocketlm_jni.so", "pocketlm-android.jar", "java-classpath.txt", "pocketlm-litertlm.jar",
                 "pocketlm-kotlinx-flow.jar"):
        if (build_dir / "native" / name).is_file():
            shutil.copy2(build_dir / "native" / name, dest / name)
        elif (dest / name).exists():
            (dest / name).unlink()  # a stale copy of an earlier build


class BuildPyWithNative(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            build_native(ROOT / "python" / "pocketlm" / "_lib")
        else:
            build_native(Path(self.build_lib) / "pocketlm" / "_lib")


class BinaryDistribution(Distribution):
    """The wheel carries a shared library, so it is platform-specific."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithNative}, distclass=BinaryDistribution)
