"""Databases and knowledge graphs → documents and dialogue: a SQLite database built here (two
tables, 1,000 rows), CSV / N-Triples / JSON-LD triples; every row and triple accounted for."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from llm_fakes import FakeLLM

import datamill
from datamill.dataset import DatasetWriter
from datamill.ingest.database import DatabaseError, read_rows, row_documents, safe_url
from datamill.ingest.dialogue import Skipped, fluent_questions, rows_to_dialogue, triples_to_dialogue
from datamill.ingest.kg import read_triples
from datamill.ingest.tables import read_table_rows
from datamill.llm import LLMClient, LLMConfig
from datamill.record import Record

CITIES = ["北京", "上海", "Paris", "London", "Tokyo", "深圳", "Berlin", "杭州"]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "shop.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, city TEXT, joined DATE)")
    con.execute("CREATE TABLE purchase (id INTEGER PRIMARY KEY, customer_id INTEGER, item TEXT, price NUMERIC)")
    customers = [
        (i, None if i % 50 == 0 else f"customer {i}", CITIES[i % len(CITIES)], f"2024-01-{i % 28 + 1:02d}")
        for i in range(1, 201)
    ]
    purchases = [(i, i % 200 + 1, f"item-{i % 37}", round(i * 1.25, 2)) for i in range(1, 801)]
    con.executemany("INSERT INTO customer VALUES (?, ?, ?, ?)", customers)
    con.executemany("INSERT INTO purchase VALUES (?, ?, ?, ?)", purchases)
    con.commit()
    con.close()
    return path


def test_both_tables_every_row_accounted_for(db, tmp_path):
    url = f"sqlite:///{db}"
    total = 0
    for table, lang in (("customer", "zh"), ("purchase", "en")):
        rows = list(read_rows(url, table=table, batch=64))
        out = list(rows_to_dialogue(rows, lang=lang, subject="name" if table == "customer" else "item"))
        records = [o for o in out if isinstance(o, Record)]
        skipped = [o for o in out if isinstance(o, Skipped)]
        assert len(records) + len(skipped) == len(rows)
        total += len(rows)
        if table == "customer":
            assert len(rows) == 200 and len(skipped) == 4  # ids 50, 100, 150, 200 have no name
            assert all("no name" in s.reason and s.where.endswith(f"#{s.raw['id']}") for s in skipped)
            first = records[0]
            assert first.messages[0].content == "customer 1的city是什么？"
            assert first.messages[1].content == "customer 1的city是上海。"
            assert first.meta["key"] == {"id": 1} and first.meta["values"]["joined"] == "2024-01-02"
        else:
            assert len(rows) == 800 and not skipped
            assert [r.meta["row"] for r in rows[:3]] == [1, 2, 3]
            assert records[0].messages[0].content == "What is the customer_id of item-1?"
        path = tmp_path / f"{table}.jsonl"
        with DatasetWriter(path, "sharegpt", keep_meta=True) as w:
            for r in records:
                w.write(r)
        back = [r for r in datamill.read(path) if isinstance(r, Record)]
        assert len(back) == len(records) == w.count
        first_line = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        assert first_line["meta"]["source"].startswith("sqlite:///") and first_line["meta"]["table"] == table
    assert total == 1000


def test_query_and_documents(db):
    q = (
        "SELECT c.name, COUNT(*) AS purchases, SUM(p.price) AS spent FROM customer c "
        "JOIN purchase p ON p.customer_id = c.id GROUP BY c.id ORDER BY c.id"
    )
    rows = list(read_rows(f"sqlite:///{db}", query=q))
    assert len(rows) == 200 and rows[0].meta["query"] == q and "key" not in rows[0].meta
    (doc,) = list(row_documents(iter(rows[:1])))
    assert doc.text.startswith("name: customer 1\npurchases: 4\nspent: ") and doc.meta["row"] == 1
    (overview,) = list(rows_to_dialogue(rows[:1], "en", style="overview"))
    assert overview.messages[1].content.startswith("Here is what the record says about customer 1:\n- purchases: 4")


def test_database_errors_name_the_table_and_hide_passwords(db):
    with pytest.raises(DatabaseError, match="no table 'nope'; tables: customer, purchase"):
        list(read_rows(f"sqlite:///{db}", table="nope"))
    with pytest.raises(DatabaseError, match="OperationalError"):
        list(read_rows(f"sqlite:///{db}", query="SELECT * FROM missing"))
    with pytest.raises(DatabaseError, match="exactly one"):
        list(read_rows(f"sqlite:///{db}"))
    assert "s3cret" not in safe_url("postgresql://bob:s3cret@db.example/prod")


def test_csv_triples_with_a_bad_line(tmp_path):
    f = tmp_path / "kg.csv"
    f.write_text(
        "subject,predicate,object\n居里夫人,出生地,华沙\n居里夫人,获奖,诺贝尔物理学奖\n"
        "broken line\n华沙,所属国家,波兰\n",
        encoding="utf-8",
    )
    out = list(triples_to_dialogue(read_triples(f), lang="zh"))
    records = [o for o in out if isinstance(o, Record)]
    (bad,) = [o for o in out if isinstance(o, Skipped)]
    assert len(records) == 3 and bad.where == f"{f}:4" and "3 non-empty columns" in bad.reason
    assert records[0].messages[0].content == "居里夫人的出生地是什么？"
    assert records[0].messages[1].content == "居里夫人的出生地是华沙。"
    assert records[0].meta["triples"] == [["居里夫人", "出生地", "华沙"]] and records[0].meta["where"] == [f"{f}:2"]
    grouped = [o for o in triples_to_dialogue(read_triples(f), "zh", group_by_subject=True) if isinstance(o, Record)]
    assert [len(r.messages) for r in grouped] == [4, 2]  # one multi-turn dialogue per subject


def test_ntriples_and_jsonld_use_labels(tmp_path):
    nt = tmp_path / "kg.nt"
    nt.write_text(
        '<http://ex.org/Marie_Curie> <http://www.w3.org/2000/01/rdf-schema#label> "Marie Curie" .\n'
        "<http://ex.org/Marie_Curie> <http://ex.org/birthPlace> <http://ex.org/Warsaw> .\n"
        '<http://ex.org/Marie_Curie> <http://ex.org/award> "Nobel Prize in Physics" .\n',
        encoding="utf-8",
    )
    out = list(triples_to_dialogue(read_triples(nt), "en"))
    texts = [o.messages[1].content for o in out if isinstance(o, Record)]
    assert sorted(texts) == [
        "The award of Marie Curie is Nobel Prize in Physics.",
        "The birth place of Marie Curie is Warsaw.",
    ]
    assert sum(isinstance(o, Skipped) and "label" in o.reason for o in out) == 1  # 3 triples = 2 + 1
    jsonld = tmp_path / "kg.jsonld"
    jsonld.write_text(
        json.dumps(
            {
                "@context": {
                    "name": "https://schema.org/name",
                    "capital": {"@id": "https://ex.org/capital", "@type": "@id"},
                },
                "@id": "https://ex.org/France",
                "name": "France",
                "capital": {"@id": "https://ex.org/Paris", "name": "Paris"},
            }
        ),
        encoding="utf-8",
    )
    out = list(triples_to_dialogue(read_triples(jsonld), "en"))
    assert [o.messages[1].content for o in out if isinstance(o, Record)] == ["The capital of France is Paris."]
    assert len(out) == 3  # the capital fact + two name (label) triples


def test_table_file_rows_to_dialogue(tmp_path):
    f = tmp_path / "products.csv"
    f.write_text("name,price,stock\nJuicy Apples,1.99,739\nBananas,1.89,6\n,2.00,1\n", encoding="utf-8")
    out = list(rows_to_dialogue(read_table_rows(f), "en"))
    assert len(out) == 3 and isinstance(out[2], Skipped) and out[2].where.endswith("#4")
    assert out[0].messages[-1].content == "The stock of Juicy Apples is 739." and out[0].meta["line"] == 2


def test_two_hop_questions_chain_two_facts(tmp_path):
    f = tmp_path / "kg.tsv"
    f.write_text("居里夫人\t出生地\t华沙\n华沙\t所属国家\t波兰\n波兰\t首都\t华沙\n", encoding="utf-8")
    out = list(triples_to_dialogue(read_triples(f), "zh", multi_hop=10))
    hops = [o for o in out if o.meta.get("hops") == 2]
    assert len(out) == 3 + len(hops)
    first = hops[0]
    assert first.messages[0].content == "居里夫人的出生地的所属国家是什么？"
    assert first.messages[1].content.endswith("所以答案是波兰。")
    assert first.meta["triples"] == [["居里夫人", "出生地", "华沙"], ["华沙", "所属国家", "波兰"]]
    # 华沙 → 波兰 → 华沙 is a loop back to the start and is not asked
    assert all(h.meta["triples"][0][0] != h.meta["triples"][1][2] for h in hops)
    assert len(list(triples_to_dialogue(read_triples(f), "en", multi_hop=1))) == 3 + 1


def test_fluent_questions_with_a_real_local_llm_server(tmp_path):
    f = tmp_path / "kg.csv"
    f.write_text("Marie Curie,birth place,Warsaw\nMarie Curie,award,Nobel Prize\nWarsaw,country,Poland\n", "utf-8")
    records = [r for r in triples_to_dialogue(read_triples(f), "en") if isinstance(r, Record)]
    script = [
        ("text", "Where was Marie Curie born?"),  # good
        ("text", "Which prize did she win?"),  # lost the name: rejected
        ("status", 500, {}, "boom"),  # an error: the template question stays
    ]
    cfg = LLMConfig(backend="openai", cache=False, timeout=2.0, max_retries=0, concurrency=1)

    async def go(base_url: str):
        async with LLMClient(cfg, base_url=base_url) as llm:
            return await fluent_questions(records, llm, "en")

    with FakeLLM(script=script) as fake:
        out = asyncio.run(go(fake.base_url))
        sent = fake.requests[0]["body"]["messages"]
    assert sent[0]["role"] == "system" and "What is the birth place of Marie Curie?" in sent[1]["content"]
    assert out[0].messages[0].content == "Where was Marie Curie born?" and out[0].meta["fluent"] == 1
    assert out[0].messages[1].content == "The birth place of Marie Curie is Warsaw."  # answer stays grounded
    assert out[1].messages[0].content == "What is the award of Marie Curie?" and "fluent" not in out[1].meta
    assert out[2].messages[0].content == "What is the country of Warsaw?"
    assert records[0].messages[0].content == "What is the birth place of Marie Curie?"  # inputs untouched
