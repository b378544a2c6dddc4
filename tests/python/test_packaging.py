"""The package as installed: version scheme, metadata (licence, classifiers, URLs, py.typed),
and type stubs that match the module. scripts/test-wheel.sh runs these on each built wheel too,
with tests/wheel/test_installed_wheel.py."""

import ast
import importlib.metadata as md
import inspect
import re
from pathlib import Path

import pytest

import pixelflux

try:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version
except ImportError:  # pip vendors it; every venv has pip
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.version import Version

STUB = Path(pixelflux.__file__).with_name("_pixelflux.pyi")


def test_version_is_upstreams_api_with_our_local_label():
    version = pixelflux.__version__
    assert re.fullmatch(r"2\.2\.1\+rs\.\d+\.\d+\.\d+", version), version
    assert md.version("pixelflux") == version
    v = Version(version)
    # Selkies 2.1.0's pin and ordinary ranges accept it; other releases' pins do not.
    for spec in ["==2.2.1", ">=2.2", "~=2.2", ">=1.2", ">=2,<3"]:
        assert v in SpecifierSet(spec), spec
    for spec in ["==1.2.2", "==2.2.0", ">=2.3", "<2"]:
        assert v not in SpecifierSet(spec), spec


def test_metadata_names_licence_classifiers_and_urls():
    meta = md.metadata("pixelflux")
    assert meta["License-Expression"] == "MPL-2.0 AND GPL-2.0-or-later"
    classifiers = meta.get_all("Classifier")
    for c in ["Typing :: Typed", "Programming Language :: Python :: 3.9",
              "Programming Language :: Python :: 3.13", "Operating System :: POSIX :: Linux"]:
        assert c in classifiers, c
    assert meta.get_all("Project-URL"), "no project URLs"
    files = {str(f) for f in md.files("pixelflux")}
    for name in ["pixelflux/py.typed", "pixelflux/_pixelflux.pyi"]:
        assert name in files, name
    licences = {Path(f).name for f in files if "/licenses/" in f}
    assert {"LICENSE", "LICENSES.md", "GPL-2.0.txt", "libjpeg-turbo-LICENSE.md",
            "rust-crates.txt"} <= licences, licences


def _stub():
    return ast.parse(STUB.read_text())


def test_stub_exports_match_the_module():
    tree = _stub()
    (stub_all,) = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", None) == "__all__" for t in n.targets)]
    assert sorted(stub_all) == sorted(pixelflux.__all__)
    for name in stub_all:
        assert hasattr(pixelflux, name), name


def test_stub_classes_are_final_because_the_classes_are():
    classes = [n for n in _stub().body if isinstance(n, ast.ClassDef)]
    assert {c.name for c in classes} == {
        "CaptureSettings", "StripeEncodeResult", "StripeCallback", "ScreenCapture",
        "StripeFrame"}
    for c in classes:
        assert any(getattr(d, "id", None) == "final" for d in c.decorator_list), c.name
        with pytest.raises(TypeError):
            type("Sub", (getattr(pixelflux, c.name),), {})


def test_stub_defaults_match_the_runtime_defaults():
    (cls,) = [n for n in _stub().body if isinstance(n, ast.ClassDef) and n.name == "CaptureSettings"]
    defaults = pixelflux.CaptureSettings()
    checked = []
    body = cls.body
    for field, doc in zip(body, body[1:]):
        if not (isinstance(field, ast.AnnAssign) and isinstance(doc, ast.Expr)):
            continue
        m = re.search(r"default (-?[\w.]+)", doc.value.value)
        if m:
            name = field.target.id
            assert repr(getattr(defaults, name)) == m.group(1), name
            checked.append(name)
    assert "stripe_height" in checked and len(checked) >= 15, checked


def test_capture_settings_has_a_text_signature():
    assert str(inspect.signature(pixelflux.CaptureSettings)) == "(**fields)"
