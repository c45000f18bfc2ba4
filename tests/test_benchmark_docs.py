"""Benchmark documents are generated: sections per script, README blocks copied, facts measured.

No timing here (machines are noisy): only that the README's benchmark blocks are
exactly RESULTS.md's, and that the generator keeps each script's section apart.
"""
from __future__ import annotations

import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import results_doc  # noqa: E402


def test_readme_blocks_are_copied_from_results_md():
    """A hand-edited README figure (or a RESULTS.md not copied over) fails here."""
    readme = pathlib.Path(results_doc.README).read_text()
    for name in results_doc.README_BLOCKS:
        assert results_doc.read_section(readme, name) is not None, f"README lacks the {name} block"
    assert results_doc.readme_differs() == []


def test_results_md_has_no_hand_written_figures():
    results = pathlib.Path(results_doc.RESULTS).read_text()
    for text in ("recorded by hand", "2-core box", "through `tf.data`", "about 8 minutes"):
        assert text not in results
    sections = [s for s in ("suite", "sampling", "traffic") if results_doc.read_section(results, s) is not None]
    assert sections, "RESULTS.md holds no generated section"
    for section in sections:  # every generated section says what it ran on, measured
        assert "Machine (measured by the run)" in results_doc.read_section(results, section)


def test_sections_are_kept_apart_and_readme_synced(tmp_path):
    results, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    a, b = results_doc.markers("readme-suite")
    results_doc.write_section(str(results), "suite", f"suite run 1\n{a}\nfigure 1\n{b}\n")
    results_doc.write_section(str(results), "sampling", "sampling run 1\n")
    results_doc.write_section(str(results), "suite", f"suite run 2\n{a}\nfigure 2\n{b}\n")
    text = results.read_text()
    assert "suite run 2" in text and "suite run 1" not in text and "sampling run 1" in text
    c, d = results_doc.markers("readme-sampling")
    e, f = results_doc.markers("readme-traffic")
    readme.write_text(f"intro\n{a}\nhand-typed 1.69x\n{b}\n{c}\nhand-typed 0.8\n{d}\n"
                      f"{e}\n{results_doc.placeholder('readme-traffic')}{f}\noutro\n")
    assert results_doc.readme_differs(str(results), str(readme)) == ["readme-suite", "readme-sampling"]
    assert results_doc.sync_readme(str(results), str(readme)) == ["readme-suite"]
    out = readme.read_text()
    assert "figure 2" in out and "1.69x" not in out and out.startswith("intro") and out.endswith("outro\n")
    # a block RESULTS.md lacks becomes the placeholder: no figure without a run behind it
    assert "0.8" not in out and results_doc.placeholder("readme-sampling") in out
    assert results_doc.readme_differs(str(results), str(readme)) == []
    # a legacy RESULTS.md without sections is replaced, not appended to
    legacy = tmp_path / "legacy.md"
    legacy.write_text("# old\nRun-to-run variation (recorded by hand): 1.69x\n")
    results_doc.write_section(str(legacy), "suite", "new\n")
    assert "1.69x" not in legacy.read_text() and "new" in legacy.read_text()


def test_machine_facts_are_measured():
    facts = results_doc.machine_facts()
    assert facts["logical_cpus"] >= 1 and 1 <= facts["usable_cpus"] <= facts["logical_cpus"]
    assert isinstance(facts["gpus"], list) and facts["cpu_model"]
    line = results_doc.machine_line(facts, facts)
    assert f"{facts['usable_cpus']}" in line and facts["cpu_model"] in line
    assert ("CPU only" in line) == (not facts["gpus"])  # never claimed, always measured
