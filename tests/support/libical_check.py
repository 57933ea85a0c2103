"""Run by Debian's /usr/bin/python3 (python3-gi + gir1.2-ical-3.0): libical's verdict on
calendar objects. Reads a JSON list of iCalendar texts on stdin, writes a JSON list of
{"parsed": bool, "errors": [...]} in the same order."""

import json
import sys

import gi

gi.require_version("ICalGLib", "3.0")
from gi.repository import ICalGLib  # noqa: E402


def errors_of(component):
    found = []
    prop = component.get_first_property(ICalGLib.PropertyKind.XLICERROR_PROPERTY)
    while prop is not None:
        found.append(prop.get_xlicerror())
        prop = component.get_next_property(ICalGLib.PropertyKind.XLICERROR_PROPERTY)
    child = component.get_first_component(ICalGLib.ComponentKind.ANY_COMPONENT)
    while child is not None:
        found.extend(errors_of(child))
        child = component.get_next_component(ICalGLib.ComponentKind.ANY_COMPONENT)
    return found


def main():
    results = []
    for text in json.load(sys.stdin):
        try:
            component = ICalGLib.Component.new_from_string(text)
        except TypeError:  # the constructor returned NULL
            component = None
        if component is None:
            results.append({"parsed": False, "errors": ["libical could not parse the text"]})
            continue
        component.check_restrictions()
        results.append({"parsed": True, "errors": errors_of(component)})
    json.dump(results, sys.stdout)


main()
