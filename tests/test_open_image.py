"""The open image (erase_core/storage/image.py): a store reopens from one encrypted file plus the
change log instead of decrypting row by row, exactly as a fresh build on its rows, and any
deletion shreds the image with the rows' keys (disk and memory)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from erase_core import ExampleIndex
from erase_core.storage import ExampleStore
from erase_core.storage.image import image_path
from erase_core.storage.keyfile import ZERO_KEY

from residue import all_file_bytes, surviving, vector_windows
from test_store import assert_keys_match_rows

N = 240


@pytest.fixture(autouse=True)
def images_for_small_stores(monkeypatch):
    monkeypatch.setenv("ERASE_IMAGE_MIN_ROWS", "1")


def vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 24)).astype(np.float32)


def build(path: Path, n: int = N, strategy: str = "erase") -> list[str]:
    """A store of n examples, a third with a subject or metadata (attributes travel in the image)."""
    ids = [f"ex-{i:04d}-ü" for i in range(n)]
    payloads = [{"q": f"question {i} " + "x" * (i % 50), "a": i, "ü": "é" * (i % 3)} for i in range(n)]
    with ExampleIndex(4, strategy=strategy, seed=3, path=path) as index:
        index.add(vectors(n), payloads, ids=ids,
                  subjects=[f"user{i % 7}" if i % 3 == 0 else None for i in range(n)],
                  metadata=[{"lang": "de" if i % 2 else "en"} if i % 3 == 1 else None for i in range(n)])
    return ids


def image_key(path: Path) -> bytes:
    with ExampleStore.open(path) as store:
        return store._keys.image_key()


def no_long_open(monkeypatch):
    """Make the long way (row-by-row load) fail, so an open that succeeds used the image."""
    def refuse(self):
        raise AssertionError("opened the long way")

    monkeypatch.setattr(ExampleStore, "load", refuse)


def state(index: ExampleIndex, q: np.ndarray) -> tuple:
    ids = sorted(index.ids)
    return (index.digest(), [s.id for s in index.select()], [s.id for s in index.search(q, 5)],
            [index.get(i) for i in ids], [index.attributes(i) for i in ids])


def test_a_long_open_writes_the_image_and_the_next_open_reads_it_exactly(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    build(path)
    assert not image_path(path).exists() and image_key(path) == ZERO_KEY  # a create does not write one
    with ExampleIndex.open(path) as first:  # the long way, which writes the image
        want = state(first, vectors(1, 9)[0])
    assert image_path(path).exists() and image_key(path) != ZERO_KEY
    with monkeypatch.context() as m:
        no_long_open(m)
        with ExampleIndex.open(path) as fast:
            got = state(fast, vectors(1, 9)[0])
            fresh = fast.rebuilt()
            assert fast.digest() == fresh.digest()
    assert got == want
    with ExampleIndex.open(path) as again:
        assert again.verify()  # against the rows themselves, decrypted one by one


def test_adds_after_the_image_are_replayed(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    build(path)
    ExampleIndex.open(path).close()  # writes the image
    with ExampleIndex.open(path) as writer:
        writer.add(vectors(30, 5), [{"late": i} for i in range(30)], ids=[f"late{i}" for i in range(30)])
        want = state(writer, vectors(1, 9)[0])
    assert image_key(path) != ZERO_KEY  # an add keeps the image: it holds nothing forgotten
    with monkeypatch.context() as m:
        no_long_open(m)
        with ExampleIndex.open(path) as fast:
            assert state(fast, vectors(1, 9)[0]) == want and len(fast) == N + 30
    with ExampleIndex.open(path) as check:
        assert check.verify()


@pytest.mark.parametrize("strategy", ["erase", "similarity"])
def test_a_forget_shreds_the_image_on_disk_and_in_memory(tmp_path, monkeypatch, strategy):
    path = tmp_path / "s.db"
    ids = build(path, strategy=strategy)
    ExampleIndex.open(path).close()
    old_key = image_key(path)
    assert old_key != ZERO_KEY
    victim = ids[17]
    with monkeypatch.context() as m:
        no_long_open(m)
        handle = ExampleIndex.open(path)  # from the image: payloads are read from their rows on demand
    assert victim not in handle._memory.pool.payload_json._texts
    payload = handle._memory.pool.payload_json[victim].encode("utf-8")  # read from its row, and kept
    assert handle._memory.pool.payload_json._texts[victim].encode("utf-8") == payload
    vector = handle.vector(victim).astype("<f4").tobytes()
    handle.forget([victim])
    assert victim not in handle._memory.pool.payload_json and victim not in handle._memory.pool.payload_json._texts
    assert image_key(path) == ZERO_KEY  # shredded with the row's key, in the same commit
    with ExampleStore.open(path) as store:
        assert store.read_image() is None
    # the image file is still there, but nothing of the example can be read from any file
    files = all_file_bytes(tmp_path)
    assert surviving(files, [payload, *vector_windows(vector)]) == []
    assert surviving(files, [old_key]) == []
    # the next open goes the long way, equals a fresh build without the victim, and writes a new image
    with ExampleIndex.open(path) as fresh:
        assert victim not in fresh and fresh.verify()
        assert fresh.digest() == handle.digest()
    assert image_key(path) not in (ZERO_KEY, old_key)
    handle.close()
    assert_keys_match_rows(path)


def test_a_damaged_or_foreign_image_is_ignored_and_replaced(tmp_path):
    path = tmp_path / "s.db"
    build(path)
    with ExampleIndex.open(path) as first:
        want = first.digest()
    blob = bytearray(image_path(path).read_bytes())
    blob[len(blob) // 2] ^= 0x40
    image_path(path).write_bytes(bytes(blob))
    with ExampleStore.open(path) as store:
        assert store.read_image() is None  # fails authentication
    with ExampleIndex.open(path) as index:
        assert index.digest() == want and index.verify()
    with ExampleStore.open(path) as store:
        assert store.read_image() is not None  # rewritten by the long open
    # an image of another store (same rows, another uuid) never opens here
    other = tmp_path / "other.db"
    build(other)
    ExampleIndex.open(other).close()
    image_path(path).write_bytes(image_path(other).read_bytes())
    with ExampleStore.open(path) as store:
        assert store.read_image() is None
    image_path(path).write_bytes(b"not an image")
    with ExampleIndex.open(path) as index:
        assert index.digest() == want
    image_path(path).unlink()
    with ExampleIndex.open(path) as index:
        assert index.digest() == want


def test_an_image_never_installs_over_a_newer_version(tmp_path):
    path = tmp_path / "s.db"
    ids = build(path)
    with ExampleStore.open(path) as store:
        version, dim, rows = store.load()
        with ExampleIndex.open(path) as other:  # installs an image at `version`
            other.forget([ids[0]])  # ... and shreds it
        assert not store.write_image(version, dim, rows)  # the store moved on: refused
        assert store._keys.image_key() == ZERO_KEY
        assert not list(tmp_path.glob("*.tmp-*"))  # its temporary file is gone
        v2, dim2, rows2 = store.load()
        assert store.write_image(v2, dim2, rows2) and store.read_image().version == v2


def test_a_left_over_partial_image_is_harmless_and_listed(tmp_path):
    path = tmp_path / "s.db"
    build(path)
    partial = image_path(path).with_name(image_path(path).name + ".tmp-1-deadbeef")
    partial.write_bytes(os.urandom(1000))  # as if killed while writing one
    with ExampleIndex.open(path) as index:
        assert index.verify()
        assert partial in index._replica.store.files() and image_path(path) in index._replica.store.files()


def test_below_the_threshold_no_image_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASE_IMAGE_MIN_ROWS", str(N + 1))
    path = tmp_path / "s.db"
    build(path)
    ExampleIndex.open(path).close()
    assert not image_path(path).exists() and image_key(path) == ZERO_KEY


def _forget_in_child(path: str, victim: str) -> None:
    with ExampleIndex.open(path) as index:
        index.forget([victim])


@pytest.mark.processes
def test_a_handle_opened_from_the_image_catches_up_on_another_process(tmp_path):
    path = tmp_path / "s.db"
    ids = build(path)
    ExampleIndex.open(path).close()
    reader = ExampleIndex.open(path)  # from the image
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_forget_in_child, args=(str(path), ids[3]))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert ids[3] not in [s.id for s in reader.search(vectors(N)[3], 3)]
    assert ids[3] not in reader and reader.verify()
    reader.close()
    assert image_key(path) == ZERO_KEY  # the child's forget shredded the image


def test_a_failed_image_write_never_fails_the_open(tmp_path, monkeypatch):
    """A full disk while writing the image, or a failure between installing the file and its
    key: the open still succeeds, and no image that cannot be read is ever used."""
    import erase_core.storage.example_store as example_store
    from erase_core.storage.keyfile import KeyFile

    path = tmp_path / "s.db"
    build(path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(example_store, "write_image_file", disk_full)
        with ExampleIndex.open(path) as index:
            want = index.digest()
    assert not image_path(path).exists() and image_key(path) == ZERO_KEY
    with monkeypatch.context() as m:
        m.setattr(KeyFile, "set_image_key", disk_full)
        with ExampleIndex.open(path) as index:
            assert index.digest() == want
    assert image_path(path).exists() and image_key(path) == ZERO_KEY  # the file without its key: unreadable
    assert not list(tmp_path.glob("*.tmp-*"))
    with ExampleIndex.open(path) as index:  # the long way again, which now installs it
        assert index.digest() == want
    assert image_key(path) != ZERO_KEY


def test_the_image_holds_no_payload_and_payloads_are_read_on_demand(tmp_path, monkeypatch):
    path = tmp_path / "s.db"
    ids = build(path)
    ExampleIndex.open(path).close()
    with monkeypatch.context() as m:
        no_long_open(m)
        with ExampleIndex.open(path) as index:
            assert index._memory.pool.payload_json._texts == {}  # nothing read yet
            got = index.get(ids[5])
            assert set(index._memory.pool.payload_json._texts) == {ids[5]}
            assert got == {"q": "question 5 " + "x" * 5, "a": 5, "ü": "éé"}
    with ExampleStore.open(path) as store:  # the image itself: vectors, ids, hashes, attributes; no payload
        img = store.read_image()
    assert len(img) == N and not hasattr(img, "payloads")


def test_a_read_that_races_a_forget_catches_up_and_answers_again(tmp_path, monkeypatch):
    """A forget committed in another handle but not yet published: a payload read of its row
    finds the row gone, catches up with what is committed, and answers without the example."""
    from erase_core.storage.errors import RowGoneError
    from erase_core.storage.keyfile import KeyFile

    path = tmp_path / "s.db"
    ids = build(path, strategy="similarity")
    ExampleIndex.open(path).close()
    reader = ExampleIndex.open(path)  # from the image
    q = reader.vector(ids[7])
    stale = reader._replica.store.published_version()
    with ExampleIndex.open(path) as writer:
        writer.forget([ids[7]])
    with pytest.raises(RowGoneError):
        reader._memory.pool.payload_json[ids[7]]  # read without catching up: the row is gone
    with monkeypatch.context() as m:
        m.setattr(KeyFile, "published_version", lambda self: stale)  # as if not yet published
        got = reader.search(q, 3)
        assert ids[7] not in [s.id for s in got] and ids[7] not in reader
    assert reader.verify()
    reader.close()


def test_an_image_larger_than_one_aes_gcm_message_is_sealed_in_chunks(tmp_path, monkeypatch):
    """Each AES-GCM message holds at most 2**31 - 1 bytes, so a large image is several chunks
    (nonce = chunk number, all bound to the store, version and chunk count): made small here."""
    import erase_core.storage.image as image

    monkeypatch.setattr(image, "_CHUNK", 4096)
    path = tmp_path / "s.db"
    build(path)
    with ExampleIndex.open(path) as first:
        want = state(first, vectors(1, 9)[0])
    blob = image_path(path).read_bytes()
    assert int.from_bytes(blob[24:32], "little") > 2  # the chunk count in the file header
    with monkeypatch.context() as m:
        no_long_open(m)
        with ExampleIndex.open(path) as fast:
            assert state(fast, vectors(1, 9)[0]) == want
    # chunks cannot be dropped, reordered or truncated unnoticed
    with ExampleStore.open(path) as store:
        key = store._keys.image_key()
        uuid = store._uuid
    assert image.read_image_file(image_path(path), key, uuid) is not None
    image_path(path).write_bytes(blob[:-100])
    assert image.read_image_file(image_path(path), key, uuid) is None
    head = image._FILE_HEAD.size
    (size,) = image._LEN.unpack_from(blob, head)
    first_chunk = blob[head : head + 8 + size]
    image_path(path).write_bytes(blob[:head] + blob[head + 8 + size :] + first_chunk)  # first chunk moved last
    assert image.read_image_file(image_path(path), key, uuid) is None


_OPENER = """
import sys
sys.path.insert(0, {repo!r})
from erase_core import ExampleIndex
print("ready", flush=True)
ExampleIndex.open({path!r}).close()
print("done", flush=True)
"""


@pytest.mark.processes
def test_kill_during_an_open_that_writes_the_image(tmp_path):
    """SIGKILL at random moments of a long open (which writes the image: temporary file, rename,
    key): the store always reopens to the same digest, and any image it then reads is whole."""
    import shutil
    from erase_core.storage import keys_path
    from killing import kill_after, kill_moments

    repo = str(Path(__file__).resolve().parents[1])
    template = tmp_path / "template.db"
    n = 20_000
    with ExampleIndex(4, seed=1, path=template) as index:
        index.add(np.random.default_rng(4).normal(size=(n, 64)).astype(np.float32),
                  [{"t": "p" * 50, "i": i} for i in range(n)], ids=[f"r{i}" for i in range(n)])
        want = index.digest()
    outcomes = []
    for trial, delay in enumerate(kill_moments([0.05, 0.4, 0.8], long=[0.05, 0.2, 0.4, 0.6, 0.8, 1.2, 1.6])):
        work = tmp_path / f"t{trial}"
        work.mkdir()
        path = work / "s.db"
        shutil.copy(template, path)
        shutil.copy(keys_path(template), keys_path(path))
        kill_after(_OPENER.format(repo=repo, path=str(path)), delay)
        with ExampleStore.open(path) as store:
            img = store.read_image()
            outcomes.append(img is not None)
            if img is not None:
                assert img.version == store.published_version() and len(img) == n
        with ExampleIndex.open(path) as index:
            assert index.digest() == want and index.verify()
    print("kill during an image-writing open: image readable after the kill in", outcomes)


def test_the_image_carries_the_fit_and_an_open_installs_it(tmp_path, monkeypatch):
    """No k-means run at an image open: the fit's records come from the image, bit-identical to
    a fresh fit on the rows; a record that does not fit the rows is refitted instead."""
    from erase_core.quantized_kmeans import QuantizedKMeans

    from conftest import assert_same_state

    path = tmp_path / "s.db"
    ids = build(path)
    ExampleIndex.open(path).close()

    def no_refit(self):
        raise AssertionError("the clustering was refitted")

    with monkeypatch.context() as m:
        no_long_open(m)
        m.setattr(QuantizedKMeans, "_refit_now", no_refit)
        fast = ExampleIndex.open(path)
    assert_same_state(fast.model, fast.rebuilt().model)
    fast.close()
    with ExampleIndex.open(path) as fast:  # and exact afterwards
        fast.forget(ids[:40])
        assert fast.verify()
    # an image whose fit is not of these rows' parameters: installed? no, refitted, still exact
    ExampleIndex.open(path).close()  # the forget shredded the image: this writes a new one
    real_params = QuantizedKMeans._state_params
    with monkeypatch.context() as m:
        m.setattr(QuantizedKMeans, "_state_params", lambda self: {**real_params(self), "seed": -1})
        refits = []
        real_refit = QuantizedKMeans._refit_now
        m.setattr(QuantizedKMeans, "_refit_now", lambda self: (refits.append(1), real_refit(self)))
        with ExampleIndex.open(path) as index:
            assert refits and index.verify()


def test_an_image_reads_with_a_cryptography_without_decrypt_into(tmp_path, monkeypatch):
    """``AESGCM.decrypt_into`` is recent; with an older ``cryptography`` the image is decrypted
    chunk by chunk into the same array."""
    import erase_core.storage.image as image

    real = image.AESGCM

    class OldAESGCM:
        def __init__(self, key):
            self._aead = real(key)

        def encrypt(self, *args):
            return self._aead.encrypt(*args)

        def decrypt(self, *args):
            return self._aead.decrypt(*args)

    monkeypatch.setattr(image, "AESGCM", OldAESGCM)
    monkeypatch.setattr(image, "_CHUNK", 5000)
    path = tmp_path / "s.db"
    build(path)
    with ExampleIndex.open(path) as first:
        want = state(first, vectors(1, 9)[0])
    with monkeypatch.context() as m:
        no_long_open(m)
        fast = ExampleIndex.open(path)
        assert state(fast, vectors(1, 9)[0]) == want
        fast.forget([fast.ids[0]])  # the vectors kept from the image are writable
    assert fast.verify()
    fast.close()
