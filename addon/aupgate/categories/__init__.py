"""Categories: what kind of site a request goes to, from third-party and hand-curated lists.

The rooms, in the order a list travels: `ids` (the category ids policies name), `entries` (one
list line's domain or URL prefix), `readers` (the four list formats), `sources` (sources.yaml:
which list feeds which category), `index` (the question every request asks: `CategoryIndex`,
`Classification`), `corrections` (aupgate's fixes to the third-party lists), `listindex` (the
in-memory reference index), `compiled`, `compiler` and `indexfile` (the compiled index, building
it, and its file, read verified and never mapped), `cache` (whether the file may be used,
rebuilding it, `load_index`), `overrides` (an agency's amendments), `importer` and `ut1` (adding
lists).
"""
