"""A deterministic, in-process byte-level tokenizer for the tiny models.

Every UTF-8 string round-trips exactly (256 byte tokens, no merges), so tests never need a download and
never hit an unknown token. Special tokens and the chat template mirror SmolLM2-135M-Instruct (ChatML),
so code written against the tiny models runs unchanged on the embedded model.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD = "<pad>"
BOS = "<bos>"
# Order fixes the ids: 256..259. <|im_end|> is the end-of-turn and eos token, as in SmolLM2.
SPECIAL_TOKENS = [IM_START, IM_END, PAD, BOS]
BYTE_VOCAB_SIZE = 256
VOCAB_SIZE = BYTE_VOCAB_SIZE + len(SPECIAL_TOKENS)  # 260

DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant."

# Same shape as SmolLM2's template: a default system turn when none is given, ChatML turns, and the
# assistant header as generation prompt. Only the default system text is shorter (tiny models see bytes).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character map (the one ByteLevel uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def byte_tokenizer(padding_side: str = "left") -> PreTrainedTokenizerFast:
    """Build the byte-level tokenizer: ids 0-255 are bytes, 256-259 are the special tokens.

    eos = <|im_end|> (end of turn), pad = <pad>, bos = <bos> (never added automatically).
    """
    to_char = _bytes_to_unicode()  # once: built inside the comprehension it ran 256 times per tokenizer
    vocab = {to_char[b]: b for b in range(BYTE_VOCAB_SIZE)}
    # BPE with no merges = one token per byte; unk never happens because every byte is in the vocab.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=IM_END,
        pad_token=PAD,
        padding_side=padding_side,
        model_max_length=2048,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast
