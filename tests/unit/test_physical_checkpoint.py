"""Which checkpoint a physical restore continues from: a sandbox's files are not synced,
so its checkpoint is trusted only in the boot of the machine that wrote it."""

from __future__ import annotations

from drconsole.actions.restore_physical import boot_id, trusted_checkpoint


def test_a_checkpoint_of_this_boot_is_kept() -> None:
    assert boot_id()  # Linux gives one
    checkpoint = {"unpacked": [0, 1], "swapped": False, "boot": boot_id()}
    assert trusted_checkpoint(checkpoint, durable=False) == checkpoint
    assert trusted_checkpoint(checkpoint, durable=True) == checkpoint


def test_an_unsynced_checkpoint_of_another_boot_starts_over() -> None:
    earlier = {"unpacked": [0, 1, 2], "swapped": True, "boot": "another-boot"}
    assert trusted_checkpoint(earlier, durable=False) == {}
    assert trusted_checkpoint(earlier, durable=True) == earlier  # synced: it survived
    assert trusted_checkpoint(None, durable=False) == {}
