"""Link the CUDA runtime libraries of the nvidia-*-cu11 packages beside libmxnet.so.

mxnet-cu112's libmxnet.so looks for libcudart.so.11.0, libcublas.so.11,
libcudnn.so.8, ... in its own directory (its rpath is $ORIGIN) and in the
system's library path; the nvidia-*-cu11 wheels install them under
site-packages/nvidia/<name>/lib. A relative symbolic link in the mxnet package
for every library file there lets `import mxnet` find them, and the libraries
they load in turn (cuDNN's sub-libraries, cublasLt), with no LD_LIBRARY_PATH.

    python scripts/link_cuda_libraries.py       (run by IGC_GPU=cu112 scripts/setup.sh)

Neither package is imported, so this works before MXNet can load.
"""
import importlib.util
import os
import sys
from pathlib import Path


def package_dirs(name):
    spec = importlib.util.find_spec(name)
    if spec is None:
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])]


def link_all(mxnet_dir, nvidia_dirs):
    """Link every nvidia/*/lib/*.so* file into mxnet_dir; the names linked."""
    linked = []
    for nvidia in nvidia_dirs:
        for library in sorted(nvidia.glob('*/lib/*.so*')):
            link = mxnet_dir / library.name
            target = os.path.relpath(library, mxnet_dir)
            if link.is_symlink() and os.readlink(link) == target:
                continue
            if link.exists() and not link.is_symlink():
                raise SystemExit(f'{link} exists and is not a link; not replacing it')
            tmp = link.with_name(link.name + '.tmp-link')
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(target)
            os.replace(tmp, link)
            linked.append(library.name)
    return linked


def main():
    mxnet_dirs, nvidia_dirs = package_dirs('mxnet'), package_dirs('nvidia')
    if not mxnet_dirs:
        sys.exit('error: no mxnet package is installed (IGC_GPU=cu112 installs mxnet-cu112)')
    if not nvidia_dirs:
        sys.exit('error: no nvidia-*-cu11 package is installed (see requirements-gpu-cu112.txt)')
    linked = link_all(mxnet_dirs[0], nvidia_dirs)
    print(f'[setup] {len(linked)} CUDA libraries linked into {mxnet_dirs[0]}')


if __name__ == '__main__':
    main()
