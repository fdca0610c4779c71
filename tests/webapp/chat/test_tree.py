"""MessageTree, plain Python: paths, siblings, the newest message of a branch, hidden replies."""

from __future__ import annotations

from webapp.chat.tree import MessageTree, Position

# q1 ─ a1 ─ q2 ─ a2
#    ├ a1b           (a regenerate of a1)
#    └ a1c ─ q3      (another, continued)
# q1b ─ a4           (an edit of the first message: a second root)
ROWS = [
    ("q1", None),
    ("a1", "q1"),
    ("q2", "a1"),
    ("a2", "q2"),
    ("a1b", "q1"),
    ("a1c", "q1"),
    ("q3", "a1c"),
    ("q1b", None),
    ("a4", "q1b"),
]


def test_siblings_are_the_versions_oldest_first_with_index_and_count() -> None:
    tree = MessageTree(ROWS)
    assert tree.position("a1b") == Position("q1", ("a1", "a1b", "a1c"), 1)
    assert tree.position("a1b").count == 3
    assert tree.position("q1b") == Position(None, ("q1", "q1b"), 1)
    assert tree.position("q2") == Position("a1", ("q2",), 0)


def test_position_fields_are_what_the_events_carry() -> None:
    assert Position("q1", ("a1", "a1b"), 0).fields() == {
        "parent_id": "q1",
        "sibling_index": 0,
        "sibling_count": 2,
        "sibling_ids": ["a1", "a1b"],
    }
    assert Position(None, ("q1",), 0).fields()["parent_id"] is None


def test_a_path_runs_from_the_root_to_the_message() -> None:
    tree = MessageTree(ROWS)
    assert tree.path_to("a2") == ["q1", "a1", "q2", "a2"]
    assert tree.path_to("q3") == ["q1", "a1c", "q3"]
    assert tree.path_to(None) == []


def test_the_newest_message_under_a_version_is_where_its_branch_was_left() -> None:
    tree = MessageTree(ROWS)
    assert tree.newest_under("a1") == "a2"
    assert tree.newest_under("a1c") == "q3"
    assert tree.newest_under("a1b") == "a1b"
    assert tree.newest_under("q1") == "q3"  # q3 is newer than a2


def test_the_remembered_leaf_is_shown_else_the_newest_message() -> None:
    tree = MessageTree(ROWS)
    assert tree.shown_path("a2") == ["q1", "a1", "q2", "a2"]
    assert tree.shown_path("unknown") == ["q1b", "a4"]
    assert tree.shown_path(None) == ["q1b", "a4"]
    assert MessageTree([]).shown_path(None) == []


def test_every_path_ends_at_a_leaf_in_creation_order() -> None:
    assert MessageTree(ROWS).all_paths() == [
        ["q1", "a1", "q2", "a2"],
        ["q1", "a1b"],
        ["q1", "a1c", "q3"],
        ["q1b", "a4"],
    ]


def test_hidden_replies_leave_the_tree_and_their_children_hang_from_the_message_before() -> None:
    tree = MessageTree(ROWS, hidden={"a1", "a1b"})
    assert "a1" not in tree and len(tree) == 7
    assert tree.path_to("a2") == ["q1", "q2", "a2"]
    assert tree.position("a1c") == Position("q1", ("q2", "a1c"), 1)
    assert tree.position("q2").parent_id == "q1"


def test_a_missing_parent_makes_a_root_and_a_loop_cannot_hang() -> None:
    tree = MessageTree([("b", "gone"), ("c", "b")])
    assert tree.path_to("c") == ["b", "c"]
    looped = MessageTree([("x", "y"), ("y", "x")], hidden={"y"})
    assert looped.path_to("x") == ["x"]
