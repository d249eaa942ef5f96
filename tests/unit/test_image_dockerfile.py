"""Dockerfile reconstruction (dfimage/whaler rules) on histories written in code."""

from __future__ import annotations

from typing import Any

import pytest

from forensics.images import dockerfile
from forensics.images.dockerfile import LocalImage, parse_created_by, reconstruct, split_and
from forensics.images.source import LayerInfo


def d(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def image(history: list[tuple[str, bool]], layers: int) -> tuple[dict[str, Any], list[LayerInfo]]:
    config = {"rootfs": {"type": "layers", "diff_ids": [d(i) for i in range(layers)]},
              "history": [{"created_by": text, **({"empty_layer": True} if empty else {})}
                          for text, empty in history]}  # fmt: skip
    return config, [LayerInfo(i, d(i), d(i), size=10 * i) for i in range(layers)]


@pytest.mark.parametrize(
    ("created_by", "expected"),
    [
        ('/bin/sh -c #(nop)  CMD ["sh"]', 'CMD ["sh"]'),
        ('/bin/sh -c #(nop)  CMD ["-c" "sleep 1"]', 'CMD ["-c", "sleep 1"]'),
        ("/bin/sh -c #(nop) WORKDIR /app", "WORKDIR /app"),
        ("/bin/sh -c #(nop) COPY file:abc in /app/a.txt ", "COPY file:abc /app/a.txt"),
        ("/bin/sh -c #(nop) ADD --chown=1:1 dir:abc in /app/d ", "ADD --chown=1:1 dir:abc /app/d"),
        ("/bin/sh -c #(nop)  VOLUME [/data /logs]", 'VOLUME ["/data", "/logs"]'),
        ("/bin/sh -c #(nop)  EXPOSE 53/udp 8080", "EXPOSE 53/udp 8080"),
        (
            '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "echo ok"] "0s" "0s" "0s" \'\\x00\'}',
            "HEALTHCHECK CMD echo ok",
        ),
        (
            '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD" "/bin/check" "-q"] "30s" "5s" "0s" \'\\x03\'}',
            'HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["/bin/check", "-q"]',
        ),
        ("/bin/sh -c apk add x", "RUN apk add x"),
        ("|1 VERSION=1.2 /bin/sh -c echo $VERSION", "RUN echo $VERSION"),
        ("RUN /bin/sh -c apt-get update # buildkit", "RUN apt-get update"),
        ("RUN |2 A=1 B=2 /bin/sh -c make # buildkit", "RUN make"),
        ("COPY /target/ / # buildkit", "COPY /target/ /"),
        ("EXPOSE map[8080/tcp:{} 53/udp:{}]", "EXPOSE 8080/tcp 53/udp"),
        ("ENV APP=/app", "ENV APP=/app"),
        ('CMD ["nginx" "-g" "daemon off;"]', 'CMD ["nginx", "-g", "daemon off;"]'),
    ],
)
def test_one_entry_becomes_one_instruction(created_by: str, expected: str) -> None:
    assert parse_created_by(created_by).text == expected


def test_build_args_and_buildkit_are_noted() -> None:
    parsed = parse_created_by("RUN |2 A=1 B=2 /bin/sh -c make # buildkit")
    assert (parsed.keyword, parsed.buildkit, parsed.build_args) == ("RUN", True, ("A=1", "B=2"))


def test_and_chains_break_outside_quotes_only() -> None:
    assert split_and("a && b &&c") == ["a", "b", "c"]
    assert split_and("echo 'x && y' && z \\&& w") == ["echo 'x && y'", "z \\&& w"]
    assert parse_created_by("/bin/sh -c a && b").text == "RUN a \\\n    && b"


def test_a_run_mentioning_nop_is_still_a_run() -> None:
    assert parse_created_by("/bin/sh -c echo '#(nop) CMD x' > /f").text == "RUN echo '#(nop) CMD x' > /f"


def test_shell_changes_follow_shell_entries() -> None:
    config, layers = image([("/bin/sh -eu -c #(nop)  SHELL [/bin/sh -eu -c]", True),
                            ("|0 /bin/sh -eu -c echo shell", False)], 1)  # fmt: skip
    result = reconstruct("x", "sha256:" + "f" * 64, config, layers)
    assert [i.text for i in result.instructions] == ['SHELL ["/bin/sh", "-eu", "-c"]', "RUN echo shell"]


def test_hostile_text_cannot_add_lines_or_escapes() -> None:
    config, layers = image([("/bin/sh -c echo a\nUSER root\x1b[2J", False)], 1)
    text = reconstruct("x", "sha256:" + "f" * 64, config, layers).text
    assert "\x1b" not in text and "\\x1b[2J" in text
    assert "\nUSER root" not in text and "echo a \\\n    USER root" in text


HISTORY = [("ADD file:base in / ", False), ('CMD ["sh"]', True), ("RUN /bin/sh -c echo 1 > /one # buildkit", False),
           ("COPY app /app # buildkit", False), ("ENV X=1", True)]  # fmt: skip


def test_from_is_the_longest_tagged_layer_chain_prefix() -> None:
    config, layers = image(HISTORY, 3)
    texts = tuple(h for h, _ in HISTORY)
    candidates = [
        LocalImage("sha256:" + "1" * 64, ("busybox:latest",), (d(0),), texts[:2]),
        LocalImage("sha256:" + "2" * 64, ("base2:1",), (d(0), d(1)), texts[:3]),
        LocalImage("sha256:" + "3" * 64, (), (d(0), d(1), d(2)), texts[:4]),  # untagged intermediate
        LocalImage("sha256:" + "4" * 64, ("other:1",), (d(0), d(9)), None),  # diverges
        LocalImage("sha256:" + "5" * 64, ("self:1",), (d(0), d(1), d(2)), texts),  # same chain, same history
    ]
    result = reconstruct("img", "sha256:" + "0" * 64, config, layers, candidates)
    assert result.base is not None and result.base.name == "base2:1"
    assert result.base.history_entries == 3 and result.base.history_matches
    body = result.text.split("FROM base2:1\n", 1)[1]
    assert body == "# layer 2: sha256:" + f"{2:064x}" + " (20 bytes)\nCOPY app /app\nENV X=1\n"
    assert [i.from_base for i in result.instructions] == [True, True, True, False, False]


def test_an_image_that_only_adds_metadata_has_its_base() -> None:
    config, layers = image([*HISTORY[:2], ("/bin/sh -c #(nop)  USER 1000", True)], 1)
    base = LocalImage("sha256:" + "1" * 64, ("busybox:latest",), (d(0),), (HISTORY[0][0], HISTORY[1][0]))
    result = reconstruct("img", "sha256:" + "0" * 64, config, layers, [base])
    assert result.base is not None and result.text.endswith("FROM busybox:latest\nUSER 1000\n")


def test_without_a_history_prefix_the_split_is_by_layers() -> None:
    config, layers = image(HISTORY, 3)
    base = LocalImage("sha256:" + "1" * 64, ("squashed:1",), (d(0),), ("something else",))
    result = reconstruct("img", "sha256:" + "0" * 64, config, layers, [base])
    assert result.base is not None and result.base.history_entries == 1 and not result.base.history_matches
    assert "split is by layer count" in result.base_note


def test_an_untagged_base_is_named_by_id_and_said_so() -> None:
    config, layers = image(HISTORY, 3)
    base = LocalImage("sha256:" + "1" * 64, (), (d(0),), None)
    result = reconstruct("img", "sha256:" + "0" * 64, config, layers, [base])
    assert "FROM sha256:" + "1" * 64 in result.text and "untagged" in result.base_note


def test_no_matching_image_says_the_base_is_unknown() -> None:
    config, layers = image(HISTORY, 3)
    result = reconstruct("img", "sha256:" + "0" * 64, config, layers,
                         [LocalImage("sha256:" + "1" * 64, ("x:1",), (d(7),))])  # fmt: skip
    assert result.base is None
    assert "# base image unknown" in result.text and "# FROM <unknown>" in result.text
    assert "ADD file:base /" in result.text and 'CMD ["sh"]' in result.text


def test_history_and_layer_counts_that_disagree_are_a_problem() -> None:
    config, layers = image(HISTORY, 2)
    assert reconstruct("img", "sha256:" + "0" * 64, config, layers).problems


def test_entries_without_a_command_are_comments() -> None:
    config, layers = image([("", False)], 1)
    config["history"][0]["comment"] = "Imported from -"
    text = reconstruct("img", "sha256:" + "0" * 64, config, layers).text
    assert "no command recorded; comment: Imported from -" in text
    assert dockerfile.render("r", "i", None, "unknown", []).endswith("# FROM <unknown>\n")
