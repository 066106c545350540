"""Maps three source roots into one `detrun` package: src/detrun, kernels/ (detrun.kernels)
and recipes/ (detrun.recipes). pyproject.toml holds everything else."""
from setuptools import find_packages, setup

ROOTS = {"detrun": "src/detrun", "detrun.kernels": "kernels", "detrun.recipes": "recipes"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = [], {}
    for name, root in ROOTS.items():
        package_dir[name] = root
        packages.append(name)
        for sub in find_packages(root):
            packages.append(f"{name}.{sub}")
            package_dir[f"{name}.{sub}"] = f"{root}/{sub.replace('.', '/')}"
    return packages, package_dir


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir)
