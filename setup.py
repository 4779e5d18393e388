"""Build of the optional fused CPU kernel (``vsml/_vsml_kernels*.so``); metadata lives in pyproject.toml.

The C++ sources in ``csrc/`` are compiled with the machine's C++ compiler against the XLA FFI
headers shipped in jaxlib (a build requirement, see pyproject.toml). Nothing is downloaded but
those PyPI packages. When no compiler is found, the compiler fails, or jaxlib's headers are
missing, the install still succeeds without the extension: ``vsml`` then runs its pure-JAX
kernels and warns once at run time (``vsml.kernels.unavailable_reason()`` says why).
``VSML_BUILD_KERNELS=0`` skips the build on purpose.
"""

from __future__ import annotations

import contextlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
SOURCES = ["csrc/dense_avx512.cc", "csrc/dense_avx2.cc", "csrc/dense_generic.cc", "csrc/dense_scalar.cc", "csrc/ffi.cc"]
EXT_NAME = "vsml._vsml_kernels"


def _note(msg: str) -> None:
    print(f"vsml: {msg}", file=sys.stderr)


def _jaxlib_headers() -> tuple[str, str] | None:
    """(include dir with xla/ffi/api/ffi.h, jaxlib version) from the build environment, or None."""
    try:
        from importlib import metadata
        from importlib.util import find_spec

        spec = find_spec("jaxlib")
        if spec is None or not spec.submodule_search_locations:
            return None
        for root in spec.submodule_search_locations:
            inc = Path(root) / "include"
            if (inc / "xla" / "ffi" / "api" / "ffi.h").is_file():
                return str(inc), metadata.version("jaxlib")
    except Exception:  # noqa: BLE001 - any failure means: build without the extension
        return None
    return None


@contextlib.contextmanager
def _parallel_compile(compiler, jobs: int):
    """Compile the sources of one extension on `jobs` threads (distutils compiles them one by one).

    Uses the compiler's standard internals (`_setup_compile`, `_get_cc_args`, `_compile`); when a
    compiler lacks them, the stock sequential compile runs.
    """
    stock = compiler.compile
    if jobs <= 1 or not all(hasattr(compiler, a) for a in ("_setup_compile", "_get_cc_args", "_compile")):
        yield
        return

    def compile(
        sources,
        output_dir=None,
        macros=None,
        include_dirs=None,
        debug=0,
        extra_preargs=None,
        extra_postargs=None,
        depends=None,
    ):
        macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
            output_dir, macros, include_dirs, sources, depends, extra_postargs
        )
        cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)
        todo = [(obj, *build[obj]) for obj in objects if obj in build]
        with ThreadPoolExecutor(jobs) as pool:
            for f in [
                pool.submit(compiler._compile, obj, src, ext, cc_args, extra_postargs, pp_opts)
                for obj, src, ext in todo
            ]:
                f.result()
        return objects

    compiler.compile = compile
    try:
        yield
    finally:
        compiler.compile = stock


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: a failed extension is skipped with a note."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = min(len(SOURCES), os.cpu_count() or 1)
        self._skipped: set[str] = set()

    def build_extension(self, ext):
        if os.environ.get("VSML_BUILD_KERNELS", "1") == "0":
            _note("VSML_BUILD_KERNELS=0: not building the fused CPU kernel")
            self._skipped.add(ext.name)
            return
        headers = _jaxlib_headers()
        if headers is None:
            _note("jaxlib's XLA FFI headers not found; building without the fused CPU kernel")
            self._skipped.add(ext.name)
            return
        inc, version = headers
        ext.include_dirs.append(inc)
        ext.define_macros.append(("VSML_BUILD_JAXLIB", f'"{version}"'))
        try:
            with _parallel_compile(self.compiler, self.parallel):
                super().build_extension(ext)
        except Exception as e:  # noqa: BLE001 - CompileError, LinkError, missing compiler, ...
            _note(f"could not build the fused CPU kernel ({type(e).__name__}: {e}); the pure-JAX kernels will be used")
            self._skipped.add(ext.name)

    def copy_extensions_to_source(self):
        keep = self.extensions
        self.extensions = [e for e in keep if e.name not in self._skipped]
        try:
            super().copy_extensions_to_source()
        finally:
            self.extensions = keep

    def get_outputs(self):
        return [p for p in super().get_outputs() if Path(p).exists()]

    def get_output_mapping(self):
        mapping = super().get_output_mapping() if hasattr(super(), "get_output_mapping") else {}
        return {k: v for k, v in mapping.items() if Path(v).exists() or Path(k).exists()}


ext = Extension(
    EXT_NAME,
    sources=SOURCES,
    depends=["csrc/dense_impl.h", "csrc/dense_kernel.h"],
    language="c++",
    extra_compile_args=[
        "-std=c++17",
        "-O3",
        "-ffp-contract=fast",
        "-fno-math-errno",
        "-fvisibility=hidden",
        "-fno-strict-aliasing",
    ],
    extra_link_args=["-pthread"],
)

setup(ext_modules=[ext], cmdclass={"build_ext": OptionalBuildExt})
