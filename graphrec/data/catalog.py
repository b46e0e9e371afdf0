"""The public datasets graphrec knows (`graphrec data list`) and `graphrec data fetch NAME`: copy or download,
verify sha256 checksums, convert to the layout of the dataset's preset, and write the folder atomically."""
from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from ..errors import GraphrecError
from .registry import PRESETS

CHUNK = 1 << 20
LIGHTGCN = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data"
DRGO = "https://raw.githubusercontent.com/user683/DRGO/ff20a968b83d5d1f1b57aff471cba3c30f980408/data_for_SELFRec"
ADVINFONCE = "https://raw.githubusercontent.com/LehengTHU/AdvInfoNCE/e7c0416d6d0047343a90c338fa37cc2d8fa85da3/data"
NFM = "https://raw.githubusercontent.com/hexiangnan/neural_factorization_machine/master/data"
MMREC = "https://github.com/enoche/MMRec (data: Google Drive links in its README)"


def baby_inter(folder: Path) -> list[str]:
    """train/val/test.json ({user: [items]}) -> MMRec's baby.inter (`userID itemID x_label`, 0/1/2 = train/valid/
    test, sorted by user then item); returns the files written."""
    rows = []
    for label, name in enumerate(("train.json", "val.json", "test.json")):
        for user, items in json.loads((folder / name).read_text()).items():
            rows += [(int(user), int(item), label) for item in items]
    rows.sort()
    (folder / "baby.inter").write_text("userID\titemID\tx_label\n" + "".join(f"{u}\t{i}\t{x}\n" for u, i, x in rows))
    return ["baby.inter"]


@dataclass(frozen=True)
class DatasetEntry:
    """A public dataset: what it is, where it comes from, its terms and the sha256 of each file (None: unverified)."""

    name: str
    title: str
    format: str
    size: str
    license: str
    source: str
    files: dict[str, Optional[str]]
    url: Optional[str] = None  # files are <url>/<file>; None: no public direct download
    redistributable: bool = True
    convert: Optional[Callable[[Path], list[str]]] = None
    data: Optional[dict] = field(default=None)

    def data_block(self) -> Optional[dict]:
        """The `data:` block of a YAML that reads the fetched folder (from the registry preset when there is one)."""
        if self.data is not None:
            return self.data
        preset = PRESETS.get(self.name)
        return None if preset is None else {"path": self.name, **{k: v for k, v in preset.items() if k != "source"}}


def _entries() -> list[DatasetEntry]:
    lightgcn = "LightGCN txt (`user item item ...`), 80/20 per-user split"
    pairs = "`user item 1` per line: train, valid_iid, test_iid, test (OOD)"
    return [
        DatasetEntry("gowalla", "Gowalla check-ins (LightGCN/NGCF split)", lightgcn,
                     "6.6 MB; 29,858 users, 40,981 items, 1,027,370 interactions",
                     "SNAP loc-gowalla, research use; the split is the NGCF/LightGCN authors'",
                     "https://github.com/gusye1234/LightGCN-PyTorch",
                     {"train.txt": "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
                      "test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3"},
                     f"{LIGHTGCN}/gowalla"),
        DatasetEntry("yelp2018", "Yelp2018 (LightGCN/NGCF split)", lightgcn,
                     "31,668 users, 38,048 items, 1,561,406 interactions",
                     "Yelp Open Dataset terms (academic, non-commercial)",
                     "https://github.com/gusye1234/LightGCN-PyTorch", {"train.txt": None, "test.txt": None},
                     f"{LIGHTGCN}/yelp2018"),
        DatasetEntry("amazon-book", "Amazon-Book (LightGCN/NGCF split)", lightgcn,
                     "52,643 users, 91,599 items, 2,984,108 interactions",
                     "Amazon review data (McAuley et al.), research use",
                     "https://github.com/gusye1234/LightGCN-PyTorch", {"train.txt": None, "test.txt": None},
                     f"{LIGHTGCN}/amazon-book"),
        DatasetEntry("ood-food", "Food.com with IID and OOD tests (DRGO/CausalDiffRec)", pairs,
                     "2.4 MB; 7,732 users, 6,293 items, 216,053 interactions",
                     "Food.com reviews, research use (no license file in the origin)",
                     "https://github.com/user683/DRGO",
                     {"train.txt": "6889b3c7ac2902c40f44a227f9cd9138ceaa777631930dfa9999812d9e9bfb75",
                      "valid_iid.txt": "35955c06fae57612490d7b69a4c7619e121873dd05a66985630e7c2ed3fe61c2",
                      "test_iid.txt": "de93811d88ee7c48ac88dcd44b94be6c2832de1a788a2a087466f5bbcd044d3a",
                      "test.txt": "bb529628d6837ce88a91daf1aaf45314fd153ffd583090d8e41cd7d7470550e1"},
                     f"{DRGO}/food"),
        DatasetEntry("ood-yelp2018", "Yelp2018 with IID and OOD tests (DRGO/CausalDiffRec)", pairs,
                     "4.5 MB; 8,093 users, 13,879 items, 397,603 interactions",
                     "Yelp Open Dataset terms (academic, non-commercial)", "https://github.com/user683/DRGO",
                     {"train.txt": "c60a46d7e9ff98d8480531fbba38d054ebb3758b5c9964d94992d5abe10d81a9",
                      "valid_iid.txt": "ff35042dcae460a7539d6480c2e86d8e51072113988b7806438c2c013a28feea",
                      "test_iid.txt": "3e98eab701e87e4d54ecaedc8a02fc90c5adbfe71fbcdd1247ef59e113920d07",
                      "test.txt": "438d4b3577564b4f17128f22ed965e8f1f867410e320f90bbeb6b86d51a93618"},
                     f"{DRGO}/yelp2018"),
        DatasetEntry("kuairec", "KuaiRec short videos, with IID and OOD tests (DRGO)", pairs,
                     "1,411 users, 3,327 videos (small matrix: fully observed)", "CC BY-SA 4.0 (kuairec.com)",
                     "https://kuairec.com", {"train.txt": None, "valid_iid.txt": None, "test_iid.txt": None,
                                              "test_ood.txt": None},
                     data={"path": "kuairec", "format": "pairs",
                           "files": {"train": "train.txt", "valid": "valid_iid.txt", "test": "test_iid.txt",
                                     "test_ood": "test_ood.txt"}}),
        DatasetEntry("douban", "Douban (OOD split used by DRGO/CausalDiffRec)", pairs,
                     "unknown here (training part not obtained)", "Douban data, research use",
                     "OOD splits of the CausalDiffRec / DRGO papers (https://github.com/user683/DRGO)",
                     {"train.txt": None, "test_iid.txt": None, "test.txt": None},
                     data={"path": "douban", "format": "pairs",
                           "files": {"train": "train.txt", "test": "test_iid.txt", "test_ood": "test.txt"}}),
        DatasetEntry("coat", "Coat shopping: MNAR train, random-exposure test", "LightGCN txt: train, valid, test_ood",
                     "28 KB; 290 users, 295 items, 2,674 pairs",
                     "Schnabel et al. ICML 2016 (Cornell), research use; cite the paper",
                     "https://www.cs.cornell.edu/~schnabts/mnar/",
                     {"train.txt": "e6c6a8727feeeae27d09c802b12d2d4a88e52aa75e4a3fd17fab439901483d5a",
                      "valid.txt": "00e3d3d1a567e4ab6f3e0f7e35a849da6221afb0df767a9ce423df58938b849e",
                      "test_ood.txt": "e77d3a6af25cb0292e79a7659a075429b8df6c86559522c657e84a48bd23f685"},
                     f"{ADVINFONCE}/coat"),
        DatasetEntry("yahoo", "Yahoo! R3 music: MNAR train, random-exposure test",
                     "LightGCN txt: train, valid, test_ood",
                     "0.7 MB; 14,382 users, 1,000 items, 129,748 pairs",
                     "Yahoo! Webscope terms: research use by the licensee, NO redistribution",
                     "https://webscope.sandbox.yahoo.com/catalog.php?datatype=r (dataset R3)",
                     {"train.txt": "cca11ae2c3baba4573a1451c8f892e1eb3d63aac4af6a2348f05ffc316ba98e6",
                      "valid.txt": "ab7c0b345cac632fd65dfe5481b34e63d5aed2d3fb1546660bd84f7796c70aac",
                      "test_ood.txt": "358efe3c475f09f30073c9fcb9b7032ed371d5eddf2ca94ec565c4cc6d976a86"},
                     redistributable=False),
        DatasetEntry("ml-latest-small", "MovieLens latest-small (2015 snapshot): ratings with timestamps",
                     "CSV without header: ratings.csv, movies.csv; tags.csv and links.csv with one",
                     "3.0 MB; 706 users, 8,552 movies, 100,023 ratings",
                     "GroupLens: research use, redistribution under the same terms, no commercial use",
                     "https://grouplens.org/datasets/movielens/",
                     {"ratings.csv": "797d5e7c25e0bec6dee25cb690c798dd77a74cfa435ad030183c487bd841b44b",
                      "movies.csv": "be2d8aa87741488d9261a9daf7d1bbfcf28a10ea89ccf37fee9f7f4367d10375",
                      "tags.csv": "374e395e5a53fde8bb55b2f5380c4705aaa88da52885880125217a59486c1177",
                      "links.csv": "984baa049b0af8ebbde24cbcaa12e36fae87dde4d3a7321a0fdaf2568acbf03c"},
                     "https://raw.githubusercontent.com/xinyudong93/SVDBasedRecommenderAlgorithms/"
                     "01d706ee12a6fced6305d1fb6dd3eabf6ca219ae/data/ml-latest-small"),
        DatasetEntry("baby", "Amazon Baby 5-core (multimodal benchmark split), interactions",
                     "JSON {user: [items]} train/val/test + id maps; converted to MMRec's baby.inter",
                     "4.0 MB; 19,445 users, 7,050 items, 160,792 interactions",
                     "Amazon review data (McAuley et al.), research use", MMREC,
                     {"train.json": "67e9c9571d3e5978d5d5ff23a6e21ebc7638f043f963e4b004e35b3be8cb799b",
                      "val.json": "30858bf9ddb07fd9eeab8f8af70ba5d4660323d2ad1460a44e445e9605d40ded",
                      "test.json": "84150e1ab9d3cf9fa0a2a9f9cae3a2cef90e0c881af6dc2767ccf2bffb47478f",
                      "item2id.json": "84fb081461e31be624983a78515f46f62f64f89d4f622495fb50abe49d387ad5",
                      "user2id.json": "1d651c05eabbd7be60c33891beca86d1c04e8de8c93ba5b7b16926c6eaf82512"},
                     convert=baby_inter),
        DatasetEntry("sports", "Amazon Sports 5-core (MMRec)", "MMRec: sports.inter + image_feat.npy, text_feat.npy",
                     "35,598 users, 18,357 items, 296,337 interactions",
                     "Amazon review data (McAuley et al.), research use", MMREC,
                     {"sports.inter": None, "image_feat.npy": None, "text_feat.npy": None}),
        DatasetEntry("clothing", "Amazon Clothing 5-core (MMRec)",
                     "MMRec: clothing.inter + image_feat.npy, text_feat.npy",
                     "39,387 users, 23,033 items, 278,677 interactions",
                     "Amazon review data (McAuley et al.), research use", MMREC,
                     {"clothing.inter": None, "image_feat.npy": None, "text_feat.npy": None}),
        DatasetEntry("frappe", "frappe context-aware app usage (NFM split)", "libFM, 10 one-hot fields",
                     "288,609 rows (train 202,027; validation 57,722; test 28,860)",
                     "frappe terms: research use only, cite the paper, NO redistribution, no commercial use",
                     "https://arxiv.org/abs/1505.03014 (Baltrunas et al.; data at baltrunas.info/context-aware)",
                     {"frappe.train.libfm": None,
                      "frappe.validation.libfm": "fdf4be563a7dd9b15f7a6e8b32671e90e6e7a2a2bd3af4e10bf13c5ad7e76e9e",
                      "frappe.test.libfm": "a2ebaef3a9af8e55f8bb0d08bc4923965e42e43760ebd7635ac2f8c5db99e097"},
                     redistributable=False),
        DatasetEntry("ml-tag", "MovieLens tag assignments (NFM split)", "libFM, 3 one-hot fields (user, movie, tag)",
                     "2,006,859 rows", "GroupLens terms (research use, no commercial use)",
                     "https://github.com/hexiangnan/neural_factorization_machine",
                     {"ml-tag.train.libfm": None, "ml-tag.validation.libfm": None, "ml-tag.test.libfm": None},
                     f"{NFM}/ml-tag"),
    ]


CATALOG: dict[str, DatasetEntry] = {entry.name: entry for entry in _entries()}


def get_entry(name: str) -> DatasetEntry:
    """The catalog entry of `name`; a one-line error with a did-you-mean otherwise."""
    if name not in CATALOG:
        close = difflib.get_close_matches(name, CATALOG, n=1)
        hint = f", did you mean '{close[0]}'?" if close else "; see graphrec data list"
        raise GraphrecError(f"data fetch: unknown dataset '{name}'{hint}")
    return CATALOG[name]


def _is_url(text: str) -> bool:
    return text.split("://", 1)[0] in ("http", "https", "file", "ftp")


def _open_source(entry: DatasetEntry, mirror: Optional[str], file: str):
    """(a readable binary stream, its size or None, where it came from) for one file of a dataset."""
    if mirror is not None and not _is_url(mirror):
        folder = Path(os.path.expanduser(mirror))
        if not folder.is_dir():
            raise GraphrecError(f"--mirror '{mirror}': no such folder; pass the folder that holds {entry.name}/ "
                                "(or its files), or a URL")
        for candidate in (folder / entry.name / file, folder / file):
            if candidate.is_file():
                return open(candidate, "rb"), candidate.stat().st_size, str(candidate)
        raise GraphrecError(f"data fetch {entry.name}: '{file}' not found in the mirror (looked in "
                            f"{folder / entry.name} and {folder}); nothing was written")
    url = f"{mirror.rstrip('/')}/{entry.name}/{file}" if mirror is not None else f"{entry.url}/{file}"
    import urllib.error
    import urllib.request
    try:
        response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - user-chosen dataset URL
    except (urllib.error.URLError, OSError) as err:
        raise GraphrecError(f"data fetch {entry.name}: cannot download {url} ({getattr(err, 'reason', err)}); "
                            "nothing was written; check the network or pass --mirror DIR") from None
    size = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    return response, int(size) if size else None, url


def _copy_verified(entry: DatasetEntry, mirror: Optional[str], file: str, target: Path) -> dict:
    """Copy one file into `target`, hashing as it streams with a progress bar; a one-line error on a checksum
    mismatch. Returns its SOURCE.json record."""
    from tqdm import tqdm
    stream, size, origin = _open_source(entry, mirror, file)
    digest = hashlib.sha256()
    with stream, open(target, "wb") as out, tqdm(total=size, unit="B", unit_scale=True, desc=file,
                                                 disable=not sys.stderr.isatty()) as bar:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            bar.update(len(chunk))
    sha = digest.hexdigest()
    expected = entry.files[file]
    if expected is not None and sha != expected:
        raise GraphrecError(f"data fetch {entry.name}: checksum mismatch for {file} from {origin} (sha256 {sha[:12]}"
                            f"..., expected {expected[:12]}...); nothing was written; the copy differs from the "
                            "registered version: get the original from " + entry.source)
    return {"from": origin, "sha256": sha, "bytes": target.stat().st_size, "verified": expected is not None}


def fetch(name: str, mirror: Optional[str] = None, out: Optional[str | Path] = None) -> Path:
    """Fetch dataset `name` into <out>/<name>/ (default out: $GRAPHREC_DATA, else ./data), all or nothing."""
    entry = get_entry(name)
    if not entry.redistributable and mirror is None:
        raise GraphrecError(f"data fetch {name}: its terms forbid redistribution ({entry.license}), so graphrec "
                            f"never downloads it; get your own copy from {entry.source} and pass --mirror DIR")
    if mirror is None and entry.url is None:
        raise GraphrecError(f"data fetch {name}: no public direct download is known; get the files "
                            f"({', '.join(entry.files)}) from {entry.source} and pass --mirror DIR")
    if not entry.redistributable:
        print(f"graphrec: {name}: terms: {entry.license}; source: {entry.source}; using your copy in {mirror}",
              file=sys.stderr)
    root = Path(os.path.expanduser(str(out))) if out else Path(os.environ.get("GRAPHREC_DATA") or "data")
    target = root / name
    if target.exists():
        raise GraphrecError(f"data fetch {name}: '{target}' already exists; remove it or pass --out to another "
                            "folder")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.", suffix=".partial"))
    try:
        files = {file: _copy_verified(entry, mirror, file, staging / file) for file in entry.files}
        derived = entry.convert(staging) if entry.convert else []
        record = {"command": f"graphrec data fetch {name}" + (f" --mirror {mirror}" if mirror else ""),
                  "dataset": name, "title": entry.title, "source": entry.source, "license": entry.license,
                  "files": files, "derived": {f: hashlib.sha256((staging / f).read_bytes()).hexdigest()
                                              for f in derived},
                  "data": entry.data_block(), "fetched": datetime.now().isoformat(timespec="seconds"),
                  "graphrec_version": _version()}
        (staging / "SOURCE.json").write_text(json.dumps(record, indent=2) + "\n")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    unverified = [f for f, r in files.items() if not r["verified"]]
    if unverified:
        print(f"graphrec: warning: {name}: no registered checksum for {', '.join(unverified)} (unverified; their "
              "sha256 is in SOURCE.json)", file=sys.stderr)
    return target


def _version() -> str:
    from .. import __version__
    return __version__


def run_list(args: argparse.Namespace) -> int:  # noqa: ARG001
    """Print the catalog: name, how it is fetched, size, format, license and source."""
    for entry in CATALOG.values():
        how = ("download" if entry.url else "--mirror only (no direct download)") if entry.redistributable \
            else "--mirror only (no redistribution)"
        checked = sum(v is not None for v in entry.files.values())
        print(f"{entry.name:<16} {entry.title}\n{'':<16} {entry.size}; {entry.format}\n{'':<16} fetch: {how}; "
              f"checksums: {checked}/{len(entry.files)} files\n{'':<16} license: {entry.license}\n{'':<16} "
              f"source: {entry.source}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch one dataset and print its folder and a ready data: block."""
    target = fetch(args.name, args.mirror, args.out)
    block = get_entry(args.name).data_block()
    print(f"fetched {args.name} into {target}")
    if block is not None:
        print("data: " + json.dumps({**block, "path": str(target)}))
    return 0


def add_parser(data_subparsers) -> None:
    """Add `list` and `fetch` to the subparsers of the `graphrec data` command."""
    listing = data_subparsers.add_parser("list", help="the public datasets graphrec can fetch, with terms and sizes")
    listing.set_defaults(func=run_list)
    fetch_cmd = data_subparsers.add_parser("fetch", help="download or copy a dataset, verify checksums, convert")
    fetch_cmd.add_argument("name", help="dataset name from graphrec data list, e.g. ood-food")
    fetch_cmd.add_argument("--mirror", help="a folder holding NAME/ or its files (your own copy), or a base URL")
    fetch_cmd.add_argument("--out", help="folder to create NAME/ in (default: $GRAPHREC_DATA, else ./data)")
    fetch_cmd.set_defaults(func=run_fetch)
