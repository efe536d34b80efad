"""``load_tool(name)``: the module of ``tools/<name>.py`` (tools are scripts, not a package), for tests that call a
tool's ``main`` or helpers in-process."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f"wssdl_tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
