"""arXiv-style LaTeX sources (issue 19, item 4): a paper written here — inline and display maths,
equation and align environments, ``\\newcommand`` / ``\\def`` / ``\\DeclareMathOperator`` macros and one
from the paper's own .sty, comments, an ``\\input`` of a second file, a theorem, lists, verbatim and a
``.bbl`` bibliography — packed into a .tar.gz in memory → text whose formulas are exactly the source's
with the macros expanded; the same from a folder, a single .tex and a gzipped .tex; unsafe members
and includes refused; broken sources reported; a recipe's accounting."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
import yaml

from datamill.dataset import Quarantined
from datamill.ingest import is_pipeline_document, read_documents
from datamill.ingest.latex import read, strip_comments
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Record

MAIN = r"""\documentclass[11pt]{article}
\usepackage{amsmath,amssymb}
\usepackage{mymacros}
% a comment that must go
\newcommand{\R}{\mathbb{R}}
\newcommand{\norm}[1]{\left\lVert #1 \right\rVert}
\newcommand{\Rn}{\R^{n}}
\newcommand{\vect}[2][n]{#2_{#1}}
\def\eps{\varepsilon}
\DeclareMathOperator{\argmin}{arg\,min}
\newtheorem{thm}{Theorem}
\title{Sharp Bounds for $\ell_2$ Regression}
\author{A. Author \and B. Author\thanks{Funded by nobody.}}
\begin{document}
\maketitle
\begin{abstract}
We study $x \in \R^d$ with error \eps. % secret remark
\end{abstract}
\section{Introduction}\label{sec:intro}
Let $f\colon \R^n \to \R$ and \(\norm{x}_2 \le 1\). As shown in~\cite{knuth84,lamport94}, see
Section~\ref{sec:intro}. Only 50\% of cases; \MyName{} is our method.
The vectors $\vect{x}$ and $\vect[m]{y}$ live in $\Rn$.
\[ \hat\theta = \argmin_{\theta} \sum_{i=1}^{N} \ell(\theta; x_i) \]
\begin{equation}\label{eq:main}
  \norm{A x - b}_2^2 \le \eps \cdot \norm{b}_2^2
\end{equation}
\begin{align}
  a &= b + c \\
  d &= \frac{1}{2}\text{ if $a > 0$}
\end{align}
$$ e^{i\pi} + 1 = 0 $$
\iffalse
This paragraph was cut before submission.
\fi
\input{sections/method}
\begin{thm}[Main]
For all $\eps > 0$ the bound holds~\cite{lamport94}.
\end{thm}
\begin{itemize}
\item First point
\item Second point with $y^2$
\end{itemize}
\begin{verbatim}
x = 1 % not a comment inside verbatim
\end{verbatim}
\bibliographystyle{plain}
\bibliography{refs}
\end{document}
"""
METHOD = r"""\subsection{Method}
We minimise $\norm{w}$ over $\R^k$. % hidden
\begin{enumerate}\item one \item two\end{enumerate}
"""
STY = r"\newcommand{\MyName}{FooNet}" + "\n"
BBL = r"""\begin{thebibliography}{10}
\providecommand{\natexlab}[1]{#1}
\bibitem{knuth84}
D.~E. Knuth.
\newblock {\em The \TeX book}.
\newblock Addison-Wesley, 1984.
\bibitem[Lamport(1994)]{lamport94}
L.~Lamport.
\newblock {\em \LaTeX: A Document Preparation System}, 1994.
\end{thebibliography}
"""
FILES = {"main.tex": MAIN, "sections/method.tex": METHOD, "mymacros.sty": STY, "main.bbl": BBL}

FORMULAS = [  # exactly the source's, with the macros expanded
    r"$x \in \mathbb{R}^d$",
    r"$f\colon \mathbb{R}^n \to \mathbb{R}$",
    r"\(\left\lVert x \right\rVert_2 \le 1\)",
    r"$x_{n}$ and $y_{m}$ live in $\mathbb{R}^{n}$",  # a macro inside a macro
    r"\[ \hat\theta = \operatorname{arg\,min}_{\theta} \sum_{i=1}^{N} \ell(\theta; x_i) \]",
    "\\begin{equation}\\label{eq:main}\n"
    "  \\left\\lVert A x - b \\right\\rVert_2^2 \\le \\varepsilon \\cdot \\left\\lVert b \\right\\rVert_2^2\n"
    "\\end{equation}",
    "\\begin{align}\n  a &= b + c \\\\\n  d &= \\frac{1}{2}\\text{ if $a > 0$}\n\\end{align}",
    r"$$ e^{i\pi} + 1 = 0 $$",
    r"$\left\lVert w \right\rVert$ over $\mathbb{R}^k$",
    r"For all $\varepsilon > 0$ the bound holds [2].",
]


def tarball(path: Path, files: dict[str, str | bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def paper(tmp_path) -> Path:
    return tarball(tmp_path / "2401.00001.tar.gz", {**FILES, "fig1.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 4000})


def one(items) -> Record:
    (rec,) = items
    assert isinstance(rec, Record), rec
    return rec


def test_formulas_stay_intact_and_macros_are_expanded(paper):
    rec = one(read(paper))
    text = rec.text
    for formula in FORMULAS:
        assert formula in text, formula
    assert text.startswith("# Sharp Bounds for $\\ell_2$ Regression\n\n## Abstract\n\nWe study $x")
    assert "\n## Introduction\n" in text and "\n### Method\n" in text  # the \input file is in
    assert "As shown in [1, 2], see Section \\ref{sec:intro}. Only 50% of cases; FooNet is our method." in text
    assert "Theorem (Main)." in text and "- First point\n- Second point with $y^2$" in text
    assert "1. one\n2. two" in text
    assert "```\nx = 1 % not a comment inside verbatim\n```" in text
    assert text.endswith(
        "## References\n\n[1] D. E. Knuth. The TeXbook. Addison-Wesley, 1984.\n"
        "[2] L. Lamport. LaTeX: A Document Preparation System, 1994."
    )
    for gone in (
        "secret remark",
        "hidden",
        "was cut",
        "\\newcommand",
        "\\R^",
        "\\norm",
        "\\eps",
        "\\vect",
        "\\documentclass",
        "A. Author",
        "plain",
        "\\cite",
        "\\bibitem",
    ):
        assert gone not in text, gone
    meta = rec.meta
    assert (meta["main"], meta["doc_type"], meta["references"]) == ("main.tex", "latex", 2)
    assert meta["title"] == "Sharp Bounds for $\\ell_2$ Regression" and meta["macros_expanded"] >= 10
    assert meta["source"] == str(paper) and meta["notes"] == []


def test_citations_as_keys_and_bibliography_dropped(paper):
    text = one(read(paper, cite="key", bibliography="drop")).text
    assert "As shown in [knuth84, lamport94]" in text and "the bound holds [lamport94]." in text
    assert "## References" not in text and "Knuth" not in text
    with pytest.raises(ValueError, match="unknown option"):
        list(read(paper, cites="key"))


def test_a_folder_a_single_tex_and_a_gzipped_tex_read_the_same(paper, tmp_path):
    folder = tmp_path / "paper"
    for name, content in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    expected = one(read(paper)).text
    assert one(read(folder, bibliography="keep")).text == expected
    assert one(read(folder / "main.tex")).text == expected
    assert list(read(folder / "sections" / "method.tex")) == []  # part of main.tex, read with it
    assert claims_by_name(folder / "main.tex") and not is_pipeline_document(paper)
    items = list(read_documents([folder]))  # walking the folder: one paper, the fragment not twice
    assert [type(i).__name__ for i in items] == ["Record"] and items[0].text == expected
    alone = tmp_path / "note.tex"
    alone.write_text("Just $a+b$ and \\emph{words}.")  # no \documentclass and no main beside it: read alone
    assert one(read(alone)).text == "Just $a+b$ and words."
    gz = tmp_path / "2401.00002.gz"  # arXiv's one-file papers: a gzipped .tex, no tarball
    gz.write_bytes(gzip.compress(MAIN.replace("\\input{sections/method}", "").encode()))
    text = one(read(gz)).text
    assert FORMULAS[4] in text and "### Method" not in text


def claims_by_name(path: Path) -> bool:
    return is_pipeline_document(path) and is_pipeline_document(path.with_suffix(".tar.gz"), "latex")


def test_unsafe_members_and_includes_are_not_followed(tmp_path):
    evil = (
        "\\documentclass{article}\\begin{document}Safe text. \\input{../secret} \\input{/etc/hostname}\\end{document}"
    )
    bundle = tarball(tmp_path / "evil.tar.gz", {"main.tex": evil, "../secret.tex": "LEAKED", "big.tex": "x" * 5000})
    rec = one(read(bundle, max_member_bytes=4096))
    assert rec.text == "Safe text."
    notes = "\n".join(rec.meta["notes"])
    assert "../secret.tex: outside the source" in notes and "big.tex: 5,000 bytes, over the limit" in notes
    assert "../secret: included by main.tex but not in the source" in notes
    (tmp_path / "secret.tex").write_text("LEAKED FROM DISK")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "main.tex").write_text(evil)
    assert "LEAKED" not in one(read(inner / "main.tex")).text  # a folder's include stays inside it


def test_broken_sources_are_reported_and_the_rest_read(paper, tmp_path):
    nomain = tarball(tmp_path / "nomain.tar.gz", {"intro.tex": "\\section{A} text"})
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a tarball at all")
    items = list(read_documents([nomain, junk, paper], source_format="latex"))
    assert [type(i).__name__ for i in items] == ["Quarantined", "Quarantined", "Record"]
    assert "no main file" in items[0].error and "neither a tarball nor a gzipped .tex" in items[1].error
    assert all(isinstance(i, Quarantined) and i.where == i.file for i in items[:2])  # whole files, not rows
    big = tarball(tmp_path / "big.tar.gz", {**FILES, "data.bin": bytes(range(256)) * 4000})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(big.read_bytes()[:-2000])  # the text members come first: read, the rest is noted
    rec = one(read(cut))
    assert FORMULAS[5] in rec.text and "damaged tarball after 5 member(s)" in rec.meta["notes"][0]


def test_a_recipe_reads_declared_latex_inputs(paper, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    out = tmp_path / "out"
    body = {
        "inputs": [{"path": str(paper), "format": "latex"}, {"path": str(junk), "format": "latex"}],
        "steps": [{"op": "length_filter", "unit": "words", "min": 10}],
        "output": {"path": str(out), "format": "pretrain"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    stats = Runner(recipes.load(tmp_path / "r.yaml")).run().stats
    assert (stats["input"], stats["kept"], stats["quarantined"]) == (1, 1, 0)
    assert stats["files"]["unreadable"] == 1 and str(junk) in str(stats["files"]["failures"])
    assert FORMULAS[5] in (out / "data-00000.jsonl").read_text().encode().decode("unicode_escape")


def test_comments_respect_escapes_and_verbatim():
    assert strip_comments("50\\% of % gone\nnext") == "50\\% of next"
    assert strip_comments("line\\\\% gone\nnext") == "line\\\\next"
    assert strip_comments("a\n% whole line\n\nb") == "a\n\nb"
    assert strip_comments("\\begin{verbatim}\n% kept\n\\end{verbatim}") == "\\begin{verbatim}\n% kept\n\\end{verbatim}"
    assert strip_comments("x\\begin{comment}\nhidden\n\\end{comment}y") == "xy"
