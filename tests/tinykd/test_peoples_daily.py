from tinykd.peoples_daily import read_peoples_daily


def test_plain_unique_sentences_without_tags():
    texts = read_peoples_daily()
    assert 15_000 < len(texts) <= 19_484 and len(set(texts)) == len(texts)
    assert texts[0] == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    assert not any("/n " in t or t.endswith("/w") for t in texts[:2000])
    assert read_peoples_daily(max_rows=10) == texts[:10]
