#!/bin/bash
# session-stats.sh - Analyze session statistics

echo "📊 Taurus Session Statistics"
echo "============================"

# Total sessions
total=$(ls ~/.taurus/sessions/*.json 2>/dev/null | wc -l)
echo "Total sessions: $total"

# Sessions this week
week=$(find ~/.taurus/sessions/ -name "*.json" -mtime -7 | wc -l)
echo "This week: $week"

# Most used tools
echo -e "\nMost used tools:"
jq -r '.toolCalls[].tool' ~/.taurus/sessions/*.json 2>/dev/null | \
  sort | uniq -c | sort -rn | head -5

# Average session length
echo -e "\nAverage messages per session:"
jq '.messages | length' ~/.taurus/sessions/*.json 2>/dev/null | \
  awk '{sum+=$1} END {print sum/NR}'

# Files modified most
echo -e "\nMost modified files:"
jq -r '.toolCalls[] | select(.tool=="edit" or .tool=="write") | .file' \
  ~/.taurus/sessions/*.json 2>/dev/null | \
  sort | uniq -c | sort -rn | head -10
