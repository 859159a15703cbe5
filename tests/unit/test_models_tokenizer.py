"""The in-process byte tokenizer: exact round-trip, special tokens, ChatML template."""

import pytest

from superalign.models.tokenizer import CHATML_TEMPLATE, VOCAB_SIZE, byte_tokenizer


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


@pytest.mark.parametrize(
    "text",
    ["", "hello world", "  leading and trailing  ", "héllo wörld", "emoji 😀🚀 and 中文", "tabs\tand\nnewlines\r\n",
     "\x00\x01 control", "<not special> <|im_start|"],
)
def test_round_trip_any_utf8(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte
    assert all(0 <= i < 256 for i in ids)
    assert tok.decode(ids) == text


def test_byte_ids_are_the_bytes(tok):
    assert tok("Az", add_special_tokens=False)["input_ids"] == [65, 122]


def test_special_tokens(tok):
    assert len(tok) == VOCAB_SIZE == 260
    assert tok.convert_tokens_to_ids("<|im_start|>") == 256
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 257
    assert tok.pad_token_id == 258 and tok.bos_token_id == 259
    ids = tok("a<|im_end|>b", add_special_tokens=False)["input_ids"]
    assert ids == [97, 257, 98]
    assert tok.decode(ids, skip_special_tokens=True) == "ab"


def test_chat_template_snapshot(tok):
    messages = [{"role": "user", "content": "Hi"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                   {"role": "assistant", "content": "A"}]
    assert tok.apply_chat_template(with_system, tokenize=False) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    )
    assert tok.chat_template == CHATML_TEMPLATE


def test_padding_side_configurable():
    left = byte_tokenizer()(["a", "abc"], padding=True)["input_ids"]
    right = byte_tokenizer(padding_side="right")(["a", "abc"], padding=True)["input_ids"]
    assert left[0] == [258, 258, 97]
    assert right[0] == [97, 258, 258]


def test_deterministic_across_builds():
    a, b = byte_tokenizer(), byte_tokenizer()
    assert a.get_vocab() == b.get_vocab()
