// Event-stream parsing and the reading of OpenAI stream chunks.
#include <gtest/gtest.h>

#include "loadgen/sse.h"

namespace ferrum::loadgen {
namespace {

std::vector<std::string> parse_whole(std::string_view bytes) {
  SseParser p;
  std::vector<std::string> events;
  p.feed(bytes, events);
  return events;
}

// The same bytes fed one at a time: reads may split events (and CRLFs) anywhere.
std::vector<std::string> parse_bytewise(std::string_view bytes) {
  SseParser p;
  std::vector<std::string> events;
  for (char c : bytes) p.feed(std::string_view(&c, 1), events);
  return events;
}

void expect_events(std::string_view bytes, const std::vector<std::string>& want) {
  EXPECT_EQ(parse_whole(bytes), want) << bytes;
  EXPECT_EQ(parse_bytewise(bytes), want) << bytes;
}

TEST(SseParser, EventsEndAtBlankLines) {
  expect_events("data: a\n\ndata: b\n\n", {"a", "b"});
  expect_events("data: {\"x\": 1}\n\ndata: [DONE]\n\n", {"{\"x\": 1}", "[DONE]"});
}

TEST(SseParser, LineEndings) {
  expect_events("data: a\r\n\r\ndata: b\r\n\r\n", {"a", "b"});
  expect_events("data: a\r\rdata: b\r\r", {"a", "b"});
  expect_events("data: a\r\n\ndata: b\n\r\n", {"a", "b"});
}

TEST(SseParser, MultiLineDataAndOtherFields) {
  expect_events("data: a\ndata: b\n\n", {"a\nb"});
  expect_events(": keep-alive\nevent: message\nid: 3\nretry: 10\ndata:no-space\n\n", {"no-space"});
  expect_events("data:  two\n\n", {" two"});  // only one space after the colon is dropped
  expect_events("data:\n\n", {""});
  expect_events("event: ping\n\n", {});  // no data: no event
}

TEST(SseParser, UnfinishedEventIsKept) {
  SseParser p;
  std::vector<std::string> events;
  p.feed("data: par", events);
  EXPECT_TRUE(events.empty());
  p.feed("tial\n", events);
  EXPECT_TRUE(events.empty());
  p.feed("\n", events);
  EXPECT_EQ(events, std::vector<std::string>{"partial"});
}

TEST(StreamChunk, Done) {
  EXPECT_TRUE(parse_stream_chunk("[DONE]").done);
  EXPECT_FALSE(parse_stream_chunk("{}").done);
}

TEST(StreamChunk, CompletionText) {
  auto c = parse_stream_chunk(R"({"id":"c1","object":"text_completion","choices":[{"index":0,"text":"hi","finish_reason":null}]})");
  EXPECT_EQ(c.text, "hi");
  EXPECT_FALSE(c.error);
  EXPECT_FALSE(c.completion_tokens);
}

TEST(StreamChunk, ChatDeltas) {
  EXPECT_EQ(parse_stream_chunk(R"({"choices":[{"index":0,"delta":{"content":"yo"}}]})").text, "yo");
  EXPECT_EQ(parse_stream_chunk(R"({"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]})").text, "hm");
  EXPECT_EQ(parse_stream_chunk(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})").text, "");
  EXPECT_EQ(parse_stream_chunk(R"({"choices":[{"index":0,"delta":{"content":null}}]})").text, "");
}

TEST(StreamChunk, Usage) {
  auto c = parse_stream_chunk(R"({"choices":[],"usage":{"prompt_tokens":16,"completion_tokens":8,"total_tokens":24}})");
  EXPECT_EQ(c.text, "");
  EXPECT_EQ(c.completion_tokens, 8);
  EXPECT_EQ(c.prompt_tokens, 16);
  EXPECT_FALSE(parse_stream_chunk(R"({"choices":[{"text":"x"}],"usage":null})").completion_tokens);
}

TEST(StreamChunk, Errors) {
  EXPECT_EQ(parse_stream_chunk(R"({"error":{"message":"boom","type":"server_error"}})").error, "boom");
  EXPECT_EQ(parse_stream_chunk(R"({"error":"plain"})").error, "plain");
  auto bad = parse_stream_chunk("{nope");
  ASSERT_TRUE(bad.error);
  EXPECT_NE(bad.error->find("invalid JSON"), std::string::npos);
  EXPECT_FALSE(parse_stream_chunk(R"({"error":null,"choices":[{"text":"a"}]})").error);
}

TEST(ErrorMessage, OpenAiBodyOrText) {
  EXPECT_EQ(error_message_of(R"({"error":{"message":"The model `x` does not exist.","type":"NotFoundError","code":404}})"),
            "The model `x` does not exist.");
  EXPECT_EQ(error_message_of(R"({"error":"nope"})"), "nope");
  EXPECT_EQ(error_message_of("Not Found\nreally"), "Not Found really");
}

}  // namespace
}  // namespace ferrum::loadgen
