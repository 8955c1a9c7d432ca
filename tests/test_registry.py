"""The generic registry: lazy import, base-class check, did-you-mean, the field and the pip extra in errors; and every
entry of the project's registries resolves."""

from __future__ import annotations

import sys

import pytest

from xlt_bench.core.errors import InputError
from xlt_bench.core.registry import Registry, did_you_mean


class Base:
    pass


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A module on sys.path that records being imported, holding one Base subclass and one unrelated class."""
    (tmp_path / "xlt_registry_plugin.py").write_text(
        "import tests_registry_log\n"
        "tests_registry_log.imported.append('plugin')\n"
        "from test_registry import Base\n"
        "class Good(Base):\n    pass\n"
        "class Unrelated:\n    pass\n", encoding="utf-8")
    (tmp_path / "tests_registry_log.py").write_text("imported = []\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "test_registry", sys.modules[__name__])
    yield
    for name in ("xlt_registry_plugin", "tests_registry_log"):
        sys.modules.pop(name, None)


def test_lookup_imports_only_on_first_use_and_caches(plugin_module):
    import tests_registry_log
    reg = Registry("widget", "widgets", {"good": "xlt_registry_plugin:Good"}, base=Base)
    reg.check(["good"])                        # validating names imports nothing
    assert "good" in reg and reg.names() == ("good",) and tests_registry_log.imported == []
    cls = reg.get("good")
    assert cls.__name__ == "Good" and issubclass(cls, Base)
    assert reg.get("good") is cls and tests_registry_log.imported == ["plugin"]


def test_base_class_is_checked(plugin_module):
    reg = Registry("widget", "widgets", {"bad": "xlt_registry_plugin:Unrelated"}, base=Base)
    with pytest.raises(TypeError, match="widget 'bad'.*is not a Base"):
        reg.get("bad")


def test_base_given_as_a_string_and_objects_checked_by_instance():
    reg = Registry("thing", "things", {"one": 1, "half": 0.5}, base="builtins:int")
    assert reg.get("one") == 1
    with pytest.raises(TypeError, match="thing 'half'"):
        reg.get("half")


def test_unknown_name_names_the_field_and_suggests():
    reg = Registry("widget", "widgets", {"token-budget": "x:Y", "fixed": "x:Z"})
    with pytest.raises(InputError) as err:
        reg.get("token-budgt", file="run.toml", line=3)
    text = str(err.value)
    assert text.startswith("run.toml:3: field 'widgets': unknown widget 'token-budgt'")
    assert "(did you mean 'token-budget'?)" in text and "known: token-budget, fixed" in text
    assert err.value.field == "widgets"
    assert did_you_mean("zzz", ["token-budget"]) == ""


def test_check_refuses_an_empty_list_and_unknown_names_without_importing():
    reg = Registry("widget", "widgets", {"a": "no_such_module_xyz:A"})
    with pytest.raises(InputError, match="at least one of a is required"):
        reg.check([])
    with pytest.raises(InputError, match="unknown widget 'b'"):
        reg.check(["a", "b"])
    reg.check(["a"])   # the module does not exist, but checking a name never imports it


def test_missing_optional_package_names_the_pip_extra():
    reg = Registry("backend", "backends", {"fast": "no_such_runtime_xyz.backend:Fast", "gone": "no_such_mod_q:G"},
                   extras={"fast": "xlt-bench[fast]"})
    with pytest.raises(InputError) as err:
        reg.get("fast")
    assert "backend 'fast' needs a package that is not installed (no_such_runtime_xyz)" in str(err.value)
    assert "pip install 'xlt-bench[fast]'" in str(err.value) and err.value.field == "backends"
    with pytest.raises(InputError, match="backend 'gone' is not available in this build"):
        reg.get("gone")
    assert not reg.available("fast")


def test_a_missing_class_in_an_existing_module_is_an_input_error():
    reg = Registry("widget", "widgets", {"w": "xlt_bench.core.registry:NoSuchClass"})
    with pytest.raises(InputError, match="xlt_bench.core.registry:NoSuchClass does not exist"):
        reg.get("w")


def test_register_and_unregister():
    reg = Registry("widget", "widgets", {"a": "m:A"})
    reg.register("b", "m:B")
    assert reg.names() == ("a", "b") and list(reg) == ["a", "b"] and len(reg) == 2
    with pytest.raises(ValueError, match="already registered"):
        reg.register("b", "m:C")
    reg.register("b", "m:C", replace=True)
    assert reg.target("b") == "m:C"
    reg.unregister("b")
    assert "b" not in reg


def _every_registry():
    from xlt_bench.backends import BACKENDS
    from xlt_bench.scenarios import SCENARIOS
    from xlt_bench.scenarios.serving.policies import POLICIES
    from xlt_bench.batching.strategies import STRATEGIES
    from xlt_bench.data.tasks import TASK_REGISTRY
    return {"backends": BACKENDS, "scenarios": SCENARIOS, "policies": POLICIES, "strategies": STRATEGIES,
            "tasks": TASK_REGISTRY}


@pytest.mark.parametrize("which", ["backends", "scenarios", "policies", "strategies", "tasks"])
def test_every_project_entry_resolves_or_names_its_extra(which):
    registry = _every_registry()[which]
    assert len(registry) > 0
    for name in registry.names():
        try:
            registry.get(name)
        except InputError as exc:   # only an optional runtime may be missing, and then its extra is named
            assert registry.extra(name) and registry.extra(name) in str(exc), (name, str(exc))


def test_config_validates_names_against_the_registries():
    from xlt_bench.core.config import RunConfig
    with pytest.raises(InputError, match=r"field 'batching': unknown batching strategy 'dynamc' "
                                         r"\(did you mean 'dynamic'\?\)"):
        RunConfig(batching=("static", "dynamc"))
    with pytest.raises(InputError, match=r"field 'backends': unknown backend 'eagr' \(did you mean 'eager'\?\)"):
        RunConfig(backends=("eagr",))
    with pytest.raises(InputError, match=r"field 'scenario': unknown scenario 'serve' \(did you mean 'server'\?\)"):
        RunConfig(scenario="serve")
    with pytest.raises(InputError, match=r"field 'policy': unknown policy 'fixd'"):
        RunConfig(policy=("fixd",))


def test_cli_exits_2_on_an_unknown_batching(capsys):
    from xlt_bench.cli import main
    assert main(["run", "--batching", "statc", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "field 'batching': unknown batching strategy 'statc' (did you mean 'static'?)" in err
