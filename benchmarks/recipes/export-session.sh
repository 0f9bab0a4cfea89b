#!/bin/bash
# export-session.sh - Export session to markdown

SESSION_FILE=$1
OUTPUT_FILE="${SESSION_FILE%.json}.md"

echo "# Taurus Session Export" > "$OUTPUT_FILE"
echo "" >> "$OUTPUT_FILE"

# Extract session metadata
jq -r '
  "**Created:** \(.created)\n" +
  "**Messages:** \(.messages | length)\n" +
  "**Tools Used:** \(.toolCalls | length)\n"
' "$SESSION_FILE" >> "$OUTPUT_FILE"

echo -e "\n## Conversation\n" >> "$OUTPUT_FILE"

# Extract messages
jq -r '
  .messages[] |
  "### \(.role | ascii_upcase)\n\n\(.content)\n"
' "$SESSION_FILE" >> "$OUTPUT_FILE"

echo "Exported to: $OUTPUT_FILE"
