"""Print pip constraints pinning every dependency of pyproject.toml (and the given extras) to its
floor: ``name>=X`` becomes ``name==X``. .ci/run installs with them to check that the floors are
true (a floor that is too low, like an optax without ``optax.tree``, fails the smoke tests there).

    python .ci/lowest_versions.py test > lowest.txt && pip install -c lowest.txt -e '.[test]'
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
for req in requirements:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", req)
    name, spec = m.group(1), m.group(2)
    floor = re.search(r">=\s*([0-9][^,;\s]*)", spec)
    if floor is None:
        sys.exit(f"{req}: no '>=' floor; every dependency needs one")
    print(f"{name}=={floor.group(1)}")
