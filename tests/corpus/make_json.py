#!/usr/bin/env python3
"""Writes the json, sjson and bjson twins of each xml fixture here, in the shapes real
BILLmanager installs answer (see docs/protocol.md): json with a single element as an object
and, as seen from some installs, list items as one-element arrays; sjson with every element
in an array (readers index doc.elem[0] and balance[0].$); bjson with plain keys, text-only
elements as strings, an empty ok as true and counters as numbers. Independent of the
gateway's own renderer on purpose. Run it again after editing an xml fixture."""
import glob, json, xml.etree.ElementTree as ET

LISTS = {"elem", "pricelist", "addon", "period", "val", "slist", "param"}

def jnode(e, mode):
    o = {}
    for k, v in e.attrib.items():
        o["$" + k] = v
    text = (e.text or "").strip() if len(e) else (e.text or "")
    if text or (not e.attrib and not len(e)):
        o["$"] = text
    names = []
    for c in e:
        if c.tag not in names:
            names.append(c.tag)
    for n in names:
        same = [jnode(c, mode) for c in e if c.tag == n]
        if mode == "sjson" or len(same) > 1 or (mode == "json-arrays" and n in LISTS):
            o[n] = same
        else:
            o[n] = same[0]
    return o

def bnode(e):
    if not e.attrib and not len(e):
        t = e.text or ""
        if e.tag == "ok" and not t:
            return True
        if e.tag in ("p_cnt", "p_num", "p_elems") and t.isdigit():
            return int(t)
        return t
    o = dict(e.attrib)
    t = (e.text or "").strip()
    if t:
        o["$"] = t
    names = []
    for c in e:
        if c.tag not in names:
            names.append(c.tag)
    for n in names:
        same = [bnode(c) for c in e if c.tag == n]
        o[n] = same if (len(same) > 1 or n in LISTS) else same[0]
    return o

for path in sorted(glob.glob("*.xml")):
    root = ET.parse(path).getroot()
    base = path[:-4]
    for mode in ("json", "json-arrays", "sjson"):
        doc = {"doc": jnode(root, mode)}
        with open(f"{base}.{mode}", "w") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
    b = bnode(root)
    if not isinstance(b, dict):
        b = {}
    with open(f"{base}.bjson", "w") as f:
        json.dump(b, f, ensure_ascii=False, indent=1)
        f.write("\n")
