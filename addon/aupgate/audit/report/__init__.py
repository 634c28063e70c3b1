"""`aupgate report`: what happened over a period, as a table, CSV, JSON or a page a director reads.

A year of audit logs is gigabytes, so the report streams: each line is parsed once, counted, and
dropped (`summary.Summary`). Everything kept is bounded: counts by action, category, hour and day
are exact and small; "top" lists (hosts, users, warn reasons, uncategorized hosts) keep at most
`cap` distinct keys each and switch to the Misra-Gries summary past that (`counting.TopCounter`),
whose counts are low by at most a stated bound (shown with the list). Nothing else grows with the
log. `reading.summarise` reads the files, in several processes if asked.

Privacy: user names appear only with `--by-user`; otherwise the summary holds none at all.
The JSON form (`Summary.to_json`) is the model; `text` (table, CSV) and `html` render it.
"""
