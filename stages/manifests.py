"""Stage `manifests`: for every stage script, the files it can import and their md5 -> manifests/<script>.txt.

Every other stage depends on its script's manifest in place of its code (picollm/codegraph.py says why).
"""

from pathlib import Path

from picollm.codegraph import import_graph, manifest, stage_scripts
from picollm.errors import exit_on_pico_error
from picollm.io import write_text
from picollm.paths import code_manifest


@exit_on_pico_error
def main() -> None:
    root = Path.cwd()
    graph = import_graph(root)
    for script in stage_scripts(root):
        write_text(code_manifest(script), manifest(root, graph, script))


if __name__ == "__main__":
    main()
