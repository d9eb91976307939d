"""The token stream the KJV model trains and evaluates on, from one-verse-per-line text."""

import sentencepiece as spm
import torch


def load_stream(text_path: str, sp: spm.SentencePieceProcessor) -> torch.Tensor:
    """All verses encoded one by one and concatenated, as int64 [N].

    Each verse gets SentencePiece's dummy prefix, so the stream reads as the verses joined by single
    spaces: running text, with no BOS or EOS between verses.
    """
    with open(text_path, encoding="utf-8") as f:
        verses = f.read().splitlines()
    ids = [token for pieces in sp.encode(verses) for token in pieces]
    return torch.tensor(ids, dtype=torch.int64)


def with_bos(chunk: torch.Tensor, bos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [BOS, c0 .. c(n-2)] and targets [c0 .. c(n-1)] for a chunk of n tokens.

    Every window starts with BOS, as a prompt does at inference time.
    """
    inputs = torch.cat((torch.full(chunk.shape[:-1] + (1,), bos_id), chunk[..., :-1]), dim=-1)
    return inputs, chunk
