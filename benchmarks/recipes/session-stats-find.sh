#!/bin/bash
# session-stats.sh as a competent user would write it: the same five figures, from one
# pass of jq over every file (`find -exec jq {} +` passes as many names per jq process
# as fit, so there is no argument-list limit), counted in awk.
DIR=${1:-~/.taurus/sessions}

echo "📊 Taurus Session Statistics"
echo "============================"
echo "Total sessions: $(find "$DIR/" -maxdepth 1 -name '*.json' | wc -l)"
echo "This week: $(find "$DIR/" -maxdepth 1 -name '*.json' -mtime -7 | wc -l)"

find "$DIR/" -maxdepth 1 -name '*.json' -exec jq -r '
  "M\t\(.messages | length)",
  (.toolCalls[] | "T\t\(.tool)", (select(.tool == "edit" or .tool == "write") | "F\t\(.file)"))
' {} + 2>/dev/null | awk -F'\t' '
  $1 == "M" { sessions++; messages += $2 }
  $1 == "T" { tools[$2]++ }
  $1 == "F" { files[$2]++ }
  END {
    print "\nMost used tools:"
    for (t in tools) print tools[t], t | "sort -rn | head -5"
    close("sort -rn | head -5")
    print "\nAverage messages per session:"
    print messages / sessions
    print "\nMost modified files:"
    for (f in files) print files[f], f | "sort -rn | head -10"
    close("sort -rn | head -10")
  }'
