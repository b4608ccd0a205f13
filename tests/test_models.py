"""CLIP loading, preprocessing, embedding and tokenizer, against PyTorch CLIP and transformers' own processors."""

from __future__ import annotations

import json
import re
import shutil
import unicodedata
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformers import CLIPImageProcessor, CLIPTokenizer
from transformers.models.clip.tokenization_clip import bytes_to_unicode

from vlmrm_jax.errors import ModelNotFoundError, VlmrmError
from vlmrm_jax.models import CLIP, build_clip_tokenizer, preprocess_images, registry
from vlmrm_jax.models import loading
from vlmrm_jax.models.tiny import DEFAULT_VOCAB_TEXTS

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
ANY_TEXT = (
    "Hello, World! It's 3:45pm -- are you 100% ready?",
    "café naïve façade — Zürich, 東京 ☕ 🤖",
    "tabs\tand\nnew lines   and  spaces",
    "(brackets) [x] {y} <z> @#$^&*_+=|\\/~`\"';:",
)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _copy(src, dst, names):
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(src / name, dst / name)
    return dst


def _smooth_uint8(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([127 + 120 * np.sin(xx / 5 + c) * np.cos(yy / 7 - c) for c in range(3)], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def embed(tiny_clip):
    return jax.jit(tiny_clip.embed_images)


@pytest.fixture(scope="module")
def images():
    return jax.random.uniform(jax.random.PRNGKey(0), (4, 40, 48, 3))


@pytest.fixture(scope="module")
def torch_clip(tiny_clip):
    """PyTorch's CLIPModel holding the tiny CLIP's weights: the reference implementation."""
    pytest.importorskip("torch")
    from transformers import CLIPModel
    from transformers.modeling_flax_pytorch_utils import load_flax_weights_in_pytorch_model

    with warnings.catch_warnings():  # torch warns that the arrays are read-only; the reference never writes them
        warnings.simplefilter("ignore", UserWarning)
        return load_flax_weights_in_pytorch_model(CLIPModel(tiny_clip.model.config), tiny_clip.params).eval()


# --- embeddings against PyTorch ---------------------------------------------------------------------------------

def test_text_embeddings_match_pytorch(tiny_clip, torch_clip):
    import torch

    prompts = ["a humanoid robot kneeling", "pole and cart", "Hello, World! 42 cafés"]
    ours = tiny_clip.embed_text(prompts)
    tokens = tiny_clip.tokenizer(prompts, padding=True, return_tensors="pt")  # padded to the longest, not to 77
    with torch.no_grad():
        reference = _unit(torch_clip.get_text_features(**tokens).numpy())
    assert ours.shape == (3, tiny_clip.embed_dim) and ours.dtype == jnp.float32
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert np.abs(ours[0] - ours[1]).max() > 1e-2


def test_image_embeddings_match_pytorch(tiny_clip, torch_clip, embed):
    import torch

    frames = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (3, 32, 32, 3)))
    pixel_values = ((frames - np.array(tiny_clip.image_mean)) / np.array(tiny_clip.image_std)).transpose(0, 3, 1, 2)
    with torch.no_grad():
        reference = _unit(torch_clip.get_image_features(pixel_values=torch.tensor(pixel_values,
                                                                                    dtype=torch.float32)).numpy())
    ours = embed(tiny_clip.params, frames)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert np.abs(ours[0] - ours[1]).max() > 1e-2


# --- preprocessing against CLIPImageProcessor -----------------------------------------------------------------

@pytest.mark.parametrize("height,width", [(48, 40), (20, 26), (100, 37)])  # downscale, upscale, very tall
@pytest.mark.parametrize("pattern", ["smooth", "noise"])
def test_preprocess_matches_clip_image_processor(height, width, pattern):
    size = 32
    if pattern == "smooth":
        image = _smooth_uint8(height, width)
    else:
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    reference = processor(images=image, return_tensors="np")["pixel_values"]
    ours = preprocess_images(jnp.asarray(image[None], jnp.float32) / 255, size)
    assert ours.shape == reference.shape == (1, 3, size, size) and ours.dtype == jnp.float32
    # PIL resamples through uint8; the gap is ~0.005 on average. A crop 1 px off, swapped channels or a missing
    # normalisation give > 0.1.
    assert np.abs(ours - reference).mean() < 0.02
    if pattern == "smooth":
        assert np.abs(ours - reference).max() < 0.05


def test_preprocess_of_an_image_already_at_size_only_normalises():
    image = _smooth_uint8(32, 32)
    frames = np.asarray(image[None], np.float32) / 255
    mean, std = (0.5, 0.25, 0.125), (0.5, 0.25, 2.0)
    expected = ((frames - np.array(mean, np.float32)) / np.array(std, np.float32)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(preprocess_images(frames, 32, mean, std), expected)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    np.testing.assert_allclose(preprocess_images(frames, 32), processor(images=image, return_tensors="np")
                               ["pixel_values"], atol=1e-5)


@pytest.mark.parametrize("bad", [np.zeros((32, 32, 3), np.float32), np.zeros((1, 32, 32, 4), np.float32),
                                 np.zeros((1, 32, 32, 3), np.uint8)])
def test_preprocess_rejects_bad_images(bad):
    with pytest.raises(VlmrmError, match=re.escape(str(bad.shape)) if bad.dtype != np.uint8 else "uint8"):
        preprocess_images(bad, 32)


# --- embed_images under jit ------------------------------------------------------------------------------------

def test_embed_images_under_jit_is_unit_norm_and_batch_consistent(tiny_clip, embed, images):
    batch = embed(tiny_clip.params, images)
    assert batch.shape == (4, tiny_clip.embed_dim) and batch.dtype == jnp.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embed(tiny_clip.params, images[2:3])[0], batch[2], atol=1e-5)
    # A CLIP is a pytree whose only leaves are its weights: it can be a jit argument.
    assert len(jax.tree.leaves(tiny_clip)) == len(jax.tree.leaves(tiny_clip.params))
    as_argument = jax.jit(lambda clip, x: clip.embed_images(clip.params, x))(tiny_clip, images)
    np.testing.assert_allclose(as_argument, batch, atol=1e-6)


def test_embed_images_in_bfloat16_returns_float32_close_to_float32(tiny_clip_dir, tiny_clip, embed, images):
    clip16 = CLIP.load(str(tiny_clip_dir), dtype=jnp.bfloat16)
    low = jax.jit(clip16.embed_images)(clip16.params, images)
    assert low.dtype == jnp.float32 and low.shape == (4, tiny_clip.embed_dim)
    cosine = np.sum(np.asarray(low) * np.asarray(embed(tiny_clip.params, images)), axis=1)
    assert cosine.min() > 0.99
    text = clip16.embed_text(["a humanoid robot kneeling"])
    assert text.dtype == jnp.float32
    assert float(text[0] @ tiny_clip.embed_text(["a humanoid robot kneeling"])[0]) > 0.99


# --- loading ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("safetensors", [True, False], ids=["model.safetensors", "pytorch_model.bin"])
def test_loads_pytorch_weights(tmp_path, tiny_clip_dir, tiny_clip, torch_clip, embed, images, safetensors):
    directory = _copy(tiny_clip_dir, tmp_path / "pt", TOKENIZER_FILES + ("preprocessor_config.json",))
    torch_clip.save_pretrained(directory, safe_serialization=safetensors)
    clip = CLIP.load(str(directory))
    prompts = ["a humanoid robot kneeling", "pole and cart"]
    np.testing.assert_allclose(clip.embed_text(prompts), tiny_clip.embed_text(prompts), atol=1e-5)
    np.testing.assert_allclose(jax.jit(clip.embed_images)(clip.params, images), embed(tiny_clip.params, images),
                               atol=1e-5)


def test_pytorch_bin_without_torch_says_pip_install_torch(tmp_path, monkeypatch, tiny_clip_dir, torch_clip):
    directory = _copy(tiny_clip_dir, tmp_path / "pt", TOKENIZER_FILES)
    torch_clip.save_pretrained(directory, safe_serialization=False)
    monkeypatch.setattr(loading, "_torch_available", lambda: False)
    with pytest.raises(ModelNotFoundError, match="pip install torch") as error:
        CLIP.load(str(directory))
    assert str(directory) in str(error.value)


def test_normalisation_comes_from_the_processor_config(tmp_path, tiny_clip_dir):
    directory = _copy(tiny_clip_dir, tmp_path / "m", TOKENIZER_FILES + ("config.json", "flax_model.msgpack"))
    assert CLIP.load(str(directory)).image_mean == pytest.approx(CLIPImageProcessor().image_mean)
    CLIPImageProcessor(image_mean=[0.5, 0.5, 0.5], image_std=[0.2, 0.3, 0.4]).save_pretrained(directory)
    clip = CLIP.load(str(directory))
    assert clip.image_mean == (0.5, 0.5, 0.5) and clip.image_std == pytest.approx((0.2, 0.3, 0.4))


def _fake_hub_cache(monkeypatch, cache, repo_id, source, names):
    """A Hugging Face cache holding ``names`` of ``source`` as the snapshot of ``repo_id``."""
    import huggingface_hub.constants
    import transformers.utils.hub

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    _copy(source, repo / "snapshots" / ("0" * 40), names)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_cached_hub_id_loads_offline(tmp_path, monkeypatch, tiny_clip_dir, tiny_clip):
    _fake_hub_cache(monkeypatch, tmp_path, "vlmrm-test/tiny-clip", tiny_clip_dir,
                    TOKENIZER_FILES + ("config.json", "flax_model.msgpack", "preprocessor_config.json"))
    clip = CLIP.load("vlmrm-test/tiny-clip")
    assert clip.name == "vlmrm-test/tiny-clip"
    np.testing.assert_allclose(clip.embed_text(["pole and cart"]), tiny_clip.embed_text(["pole and cart"]),
                               atol=1e-6)


def test_partly_cached_hub_id_offline_is_a_clean_error(tmp_path, monkeypatch, tiny_clip_dir):
    # Without tokenizer files in the cache, transformers raises a TypeError (see FINDINGS.md).
    _fake_hub_cache(monkeypatch, tmp_path, "vlmrm-test/partial-clip", tiny_clip_dir,
                    ("config.json", "flax_model.msgpack"))
    with pytest.raises(ModelNotFoundError, match="cache does not hold all of its files") as error:
        CLIP.load("vlmrm-test/partial-clip")
    assert "'vlmrm-test/partial-clip'" in str(error.value) and "--model" in str(error.value)


# --- errors ----------------------------------------------------------------------------------------------------

def _load_error(name) -> str:
    with pytest.raises(ModelNotFoundError) as error:
        CLIP.load(str(name))
    message = str(error.value)
    assert str(name) in message and "--model" in message and "\n" not in message
    return message


def test_missing_directory_is_named(tmp_path):
    assert "no such directory" in _load_error(tmp_path / "no_such_clip")


def test_directory_without_weights_names_the_missing_file(tmp_path, tiny_clip_dir):
    directory = _copy(tiny_clip_dir, tmp_path / "m", TOKENIZER_FILES + ("config.json",))
    assert "flax_model.msgpack" in _load_error(directory)


def test_directory_without_tokenizer_names_the_missing_files(tmp_path, tiny_clip_dir):
    directory = _copy(tiny_clip_dir, tmp_path / "m", ("config.json", "flax_model.msgpack"))
    assert "vocab.json" in _load_error(directory)


def test_non_clip_config_is_rejected(tmp_path, tiny_clip_dir):
    directory = _copy(tiny_clip_dir, tmp_path / "m", TOKENIZER_FILES + ("flax_model.msgpack",))
    (directory / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    assert "not a CLIP" in _load_error(directory)


def test_weights_that_do_not_fit_the_config_are_rejected(tmp_path, tiny_clip_dir):
    directory = _copy(tiny_clip_dir, tmp_path / "m", TOKENIZER_FILES + ("flax_model.msgpack",))
    config = json.loads((tiny_clip_dir / "config.json").read_text())
    config["projection_dim"] = 8
    (directory / "config.json").write_text(json.dumps(config))
    assert "incompatible" in _load_error(directory)


@pytest.mark.parametrize("weights", ["flax_model.msgpack", "model.safetensors"])
def test_truncated_weights_are_rejected(tmp_path, tiny_clip_dir, weights):
    directory = _copy(tiny_clip_dir, tmp_path / "m", TOKENIZER_FILES + ("config.json",))
    (directory / weights).write_bytes((tiny_clip_dir / "flax_model.msgpack").read_bytes()[:1000])
    assert "unreadable" in _load_error(directory)


def test_unknown_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "HF_HUB_OFFLINE" in _load_error("vlmrm-test/no-such-clip")


@pytest.mark.parametrize("prompts", [[""], ["a humanoid robot", "   "], "a humanoid robot", []])
def test_empty_prompts_are_rejected(tiny_clip, prompts):
    with pytest.raises(VlmrmError, match="prompt"):
        tiny_clip.embed_text(prompts)


def test_shipped_model_names_resolve_through_the_registry(monkeypatch, tmp_path, tiny_clip_dir):
    monkeypatch.setitem(registry.OFFLINE_MODELS, "tiny-test", tiny_clip_dir)
    monkeypatch.setitem(registry.OFFLINE_MODELS, "tiny-gone", tmp_path / "gone")
    clip = CLIP.load("tiny-test")
    assert clip.name == "tiny-test" and clip.image_size == 32
    with pytest.raises(ModelNotFoundError, match="config.json, flax_model.msgpack missing.*tiny-gone, tiny-test"):
        CLIP.load("tiny-gone")
    with pytest.raises(ModelNotFoundError, match="'nope' is not a shipped offline model.*tiny-gone, tiny-test"):
        registry.resolve_model("nope")


# --- tokenizer -------------------------------------------------------------------------------------------------

def test_tokenizer_has_clips_vocabulary_layout(tiny_clip):
    tokenizer = tiny_clip.tokenizer
    vocab = tokenizer.get_vocab()
    for i, symbol in enumerate(bytes_to_unicode().values()):
        assert vocab[symbol] == i and vocab[symbol + "</w>"] == 256 + i
    assert tokenizer.eos_token_id == len(vocab) - 1 and tokenizer.bos_token_id == len(vocab) - 2
    assert tiny_clip.model.config.text_config.vocab_size == len(vocab)


@pytest.mark.parametrize("text", ANY_TEXT)
def test_tokenizer_encodes_any_text_without_unknown_tokens(tiny_clip, text):
    tokenizer = tiny_clip.tokenizer
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids[1:-1]
    decoded = tokenizer.decode(ids[1:-1])
    assert "".join(decoded.split()) == "".join(unicodedata.normalize("NFC", text).lower().split())


def test_tokenizer_truncates_long_text_to_the_context_length(tiny_clip):
    ids = tiny_clip.tokenizer(" ".join(["kneeling"] * 200), truncation=True)["input_ids"]
    assert len(ids) == tiny_clip.context_length == 77 and ids[-1] == tiny_clip.tokenizer.eos_token_id
    assert tiny_clip.embed_text([" ".join(["kneeling"] * 200)]).shape == (1, tiny_clip.embed_dim)


def test_fast_and_slow_tokenizers_agree(tiny_clip_dir, tiny_clip):
    slow = CLIPTokenizer.from_pretrained(tiny_clip_dir)  # transformers' Python implementation of CLIP's BPE
    for text in DEFAULT_VOCAB_TEXTS + ANY_TEXT[:1] + ("Stack the red object on the blue object.",):
        assert tiny_clip.tokenizer(text)["input_ids"] == slow(text)["input_ids"]


def test_paper_prompts_round_trip(tiny_clip):
    for prompt in DEFAULT_VOCAB_TEXTS:
        ids = tiny_clip.tokenizer(prompt)["input_ids"]
        # CLIP's BPE makes punctuation a word of its own, so "down," decodes as "down ,".
        assert tiny_clip.tokenizer.decode(ids, skip_special_tokens=True).replace(" ,", ",") == prompt.lower()


def test_tokenizer_without_merges_spells_in_bytes(tmp_path):
    tokenizer = build_clip_tokenizer(tmp_path, [], vocab_size=514)
    assert len(tokenizer) == 514
    assert tokenizer.tokenize("Hi there") == ["h", "i</w>", "t", "h", "e", "r", "e</w>"]


def test_tokenizer_learns_merges_from_the_corpus(tmp_path):
    tokenizer = build_clip_tokenizer(tmp_path, ["kneeling robot"] * 5, vocab_size=600)
    assert tokenizer.tokenize("Kneeling robot") == ["kneeling</w>", "robot</w>"]


@pytest.mark.parametrize("vocab_size", [513, 49409])
def test_tokenizer_vocab_size_out_of_range(tmp_path, vocab_size):
    with pytest.raises(VlmrmError, match=f"vocab_size={vocab_size}"):
        build_clip_tokenizer(tmp_path, ["a"], vocab_size=vocab_size)
