// Tests of the safetensors reader and writer: round trips, BF16, and one
// clear error for each kind of malformed file.
#include "ffn/common/safetensors.h"

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ffn {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  return ::testing::TempDir() + "ffn_safetensors_test_" + std::to_string(::getpid());
}

std::string TempPath(const std::string& name) {
  std::filesystem::create_directories(TempDir());
  return TempDir() + "/" + name;
}

// Removes the test's files when the program ends.
class RemoveTempDir : public ::testing::Environment {
  void TearDown() override { std::filesystem::remove_all(TempDir()); }
};
[[maybe_unused]] ::testing::Environment* const kRemoveTempDir =
    ::testing::AddGlobalTestEnvironment(new RemoveTempDir);

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string LittleEndian64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A file with header `json` (its true length) followed by `data`.
std::string MakeFile(const std::string& name, const std::string& json, const std::string& data) {
  const std::string path = TempPath(name);
  WriteBytes(path, LittleEndian64(json.size()) + json + data);
  return path;
}

template <typename T>
std::string RawBytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Opens `path` and expects `code` with a message naming the file and `what`.
void ExpectOpenError(const std::string& path, absl::StatusCode code, const std::string& what) {
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok()) << path << " opened but should not have";
  EXPECT_EQ(file.status().code(), code) << file.status();
  const std::string message(file.status().message());
  EXPECT_THAT(message, HasSubstr(path));
  EXPECT_THAT(message, HasSubstr(what));
}

TEST(SafetensorsTest, WriteThenReadF32RoundTrip) {
  // Bit patterns that must survive unchanged: -0, denormal, inf, NaN payload.
  std::vector<float> special = {0.0f, -0.0f, std::numeric_limits<float>::denorm_min(),
                                -std::numeric_limits<float>::infinity(),
                                std::bit_cast<float>(0x7fc01234u), 1e-30f};
  std::vector<float> matrix(6 * 5);
  for (size_t i = 0; i < matrix.size(); ++i) matrix[i] = 0.5f * static_cast<float>(i) - 3.25f;
  const std::string path = TempPath("roundtrip.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"layer.w", {6, 5}, matrix},
                                      {"special", {6}, special},
                                      {"scalar", {}, {42.0f}},
                                      {"empty", {0, 3}, {}}})
                  .ok());

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->path(), path);
  EXPECT_THAT((*file)->Names(), ::testing::ElementsAre("empty", "layer.w", "scalar", "special"));

  auto entry = (*file)->Get("layer.w");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->dtype, "F32");
  EXPECT_EQ(entry->shape, (std::vector<int64_t>{6, 5}));
  EXPECT_EQ(entry->size_bytes, 6u * 5u * 4u);
  // The writer pads the header so the data section is 8-byte aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(entry->data) % 8, 0u);

  const int64_t matrix_shape[] = {6, 5};
  auto w = (*file)->ReadFloat("layer.w", matrix_shape);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(*w, matrix);

  const int64_t special_shape[] = {6};
  auto s = (*file)->ReadFloat("special", special_shape);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_EQ(s->size(), special.size());
  for (size_t i = 0; i < special.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>((*s)[i]), std::bit_cast<uint32_t>(special[i])) << i;
  }

  auto scalar = (*file)->ReadFloat("scalar", std::span<const int64_t>());
  ASSERT_TRUE(scalar.ok()) << scalar.status();
  EXPECT_EQ(*scalar, std::vector<float>{42.0f});

  const int64_t empty_shape[] = {0, 3};
  auto empty = (*file)->ReadFloat("empty", empty_shape);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
}

TEST(SafetensorsTest, WriteRejectsValuesNotMatchingShape) {
  absl::Status s = WriteSafetensors(TempPath("bad_write.safetensors"), {{"t", {2, 3}, {1, 2, 3}}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("'t'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("[2, 3]"));
}

TEST(SafetensorsTest, WriteIntoMissingFolderFails) {
  absl::Status s = WriteSafetensors(TempPath("no/such/folder/x.safetensors"), {{"t", {1}, {1}}});
  EXPECT_FALSE(s.ok());
}

TEST(SafetensorsTest, Bf16ConvertsExactly) {
  // bf16 bits and the float they denote (the top half of the float's bits).
  const std::vector<uint16_t> bits = {0x3F80, 0xC000, 0x3F81, 0x7F80, 0xFF80,
                                      0x0001, 0x8000, 0x4049, 0x7F7F};
  const std::vector<float> want = {1.0f,
                                   -2.0f,
                                   1.0078125f,
                                   std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(),
                                   std::bit_cast<float>(0x00010000u),
                                   -0.0f,
                                   3.140625f,
                                   std::bit_cast<float>(0x7F7F0000u)};
  const std::vector<uint16_t> nan_bits = {0x7FC0};
  // Odd header length: the data section is not 2-byte aligned.
  std::string json =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[3,3],"data_offsets":[0,18]},)"
      R"("nan":{"dtype":"BF16","shape":[1],"data_offsets":[18,20]}})";
  if (json.size() % 2 == 0) json += ' ';
  const std::string path = MakeFile("bf16.safetensors", json, RawBytes(bits) + RawBytes(nan_bits));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_THAT((*file)->Names(), ::testing::ElementsAre("b", "nan"));  // no __metadata__
  auto entry = (*file)->Get("b");
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->dtype, "BF16");
  EXPECT_EQ(entry->size_bytes, 18u);

  const int64_t shape[] = {3, 3};
  auto values = (*file)->ReadFloat("b", shape);
  ASSERT_TRUE(values.ok()) << values.status();
  ASSERT_EQ(values->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>((*values)[i]), std::bit_cast<uint32_t>(want[i]))
        << "element " << i << ": bf16 0x" << std::hex << bits[i];
  }
  const int64_t one[] = {1};
  auto nan = (*file)->ReadFloat("nan", one);
  ASSERT_TRUE(nan.ok()) << nan.status();
  EXPECT_TRUE(std::isnan((*nan)[0]));
}

TEST(SafetensorsTest, F16ConvertsExactly) {
  // Every class of binary16: normals, the largest and smallest normal,
  // subnormals (the smallest, and one with a lower leading bit), zeros,
  // infinities; then a NaN.
  const std::vector<uint16_t> bits = {0x3C00, 0xC000, 0x3C01, 0x7BFF, 0x0400,
                                      0x0001, 0x0155, 0x8000, 0x7C00, 0xFC00};
  const std::vector<float> want = {1.0f,
                                   -2.0f,
                                   1.0f + 0x1.0p-10f,
                                   65504.0f,
                                   0x1.0p-14f,
                                   0x1.0p-24f,
                                   341 * 0x1.0p-24f,
                                   -0.0f,
                                   std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity()};
  const std::vector<uint16_t> nan_bits = {0x7E00};
  const std::string json =
      R"({"h":{"dtype":"F16","shape":[10],"data_offsets":[0,20]},)"
      R"("nan":{"dtype":"F16","shape":[1],"data_offsets":[20,22]}})";
  const std::string path = MakeFile("f16.safetensors", json, RawBytes(bits) + RawBytes(nan_bits));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const int64_t shape[] = {10};
  auto values = (*file)->ReadFloat("h", shape);
  ASSERT_TRUE(values.ok()) << values.status();
  ASSERT_EQ(values->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>((*values)[i]), std::bit_cast<uint32_t>(want[i]))
        << "element " << i << ": f16 0x" << std::hex << bits[i];
  }
  const int64_t one[] = {1};
  auto nan = (*file)->ReadFloat("nan", one);
  ASSERT_TRUE(nan.ok()) << nan.status();
  EXPECT_TRUE(std::isnan((*nan)[0]));
}

TEST(SafetensorsTest, UnalignedF32DataReads) {
  std::string json = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  if (json.size() % 4 == 0) json += ' ';
  const std::string path =
      MakeFile("unaligned.safetensors", json, RawBytes(std::vector<float>{1.5f, -2.25f}));
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const int64_t shape[] = {2};
  auto values = (*file)->ReadFloat("x", shape);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(*values, (std::vector<float>{1.5f, -2.25f}));
}

TEST(SafetensorsTest, NonexistentPathIsNotFound) {
  ExpectOpenError(TempPath("does_not_exist.safetensors"), absl::StatusCode::kNotFound,
                  "cannot open");
}

TEST(SafetensorsTest, DirectoryIsRejected) {
  const std::string dir = TempPath("a_directory");
  std::filesystem::create_directories(dir);
  ExpectOpenError(dir, absl::StatusCode::kInvalidArgument, "not a regular file");
}

TEST(SafetensorsTest, EmptyFile) {
  const std::string path = TempPath("empty.safetensors");
  WriteBytes(path, "");
  ExpectOpenError(path, absl::StatusCode::kInvalidArgument, "too short (0 bytes");
}

TEST(SafetensorsTest, ShorterThanEightBytes) {
  const std::string path = TempPath("short.safetensors");
  WriteBytes(path, std::string("\x02\0\0\0\0", 5));
  ExpectOpenError(path, absl::StatusCode::kInvalidArgument, "too short (5 bytes");
}

TEST(SafetensorsTest, HeaderLengthBeyondFile) {
  const std::string path = TempPath("long_header.safetensors");
  WriteBytes(path, LittleEndian64(1000) + "{}");
  ExpectOpenError(path, absl::StatusCode::kInvalidArgument, "header length 1000 exceeds the file");
  // A length near 2^64 must not wrap around any size arithmetic.
  WriteBytes(path, LittleEndian64(~uint64_t{0} - 3) + "{}");
  ExpectOpenError(path, absl::StatusCode::kInvalidArgument, "exceeds the file");
}

TEST(SafetensorsTest, HeaderNotJson) {
  ExpectOpenError(MakeFile("not_json.safetensors", "{this is not json", ""),
                  absl::StatusCode::kInvalidArgument, "not a JSON object");
}

TEST(SafetensorsTest, HeaderJsonNotAnObject) {
  ExpectOpenError(MakeFile("array.safetensors", "[1, 2, 3]", ""),
                  absl::StatusCode::kInvalidArgument, "not a JSON object");
  ExpectOpenError(MakeFile("string.safetensors", "\"hello\"", ""),
                  absl::StatusCode::kInvalidArgument, "not a JSON object");
}

TEST(SafetensorsTest, TensorEntryNotAnObject) {
  ExpectOpenError(MakeFile("entry_number.safetensors", R"({"t": 5})", ""),
                  absl::StatusCode::kInvalidArgument, "tensor 't': needs dtype, shape and data_offsets");
}

TEST(SafetensorsTest, MissingDataOffsets) {
  ExpectOpenError(
      MakeFile("no_offsets.safetensors", R"({"t":{"dtype":"F32","shape":[2]}})", std::string(8, '\0')),
      absl::StatusCode::kInvalidArgument, "tensor 't': needs dtype, shape and data_offsets");
}

TEST(SafetensorsTest, MalformedDataOffsets) {
  ExpectOpenError(MakeFile("bad_offsets.safetensors",
                           R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})",
                           std::string(8, '\0')),
                  absl::StatusCode::kInvalidArgument, "tensor 't': malformed");
  ExpectOpenError(MakeFile("neg_offsets.safetensors",
                           R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})",
                           std::string(8, '\0')),
                  absl::StatusCode::kInvalidArgument, "tensor 't': malformed");
}

TEST(SafetensorsTest, OffsetsOutOfRange) {
  ExpectOpenError(MakeFile("offsets_past_end.safetensors",
                           R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                           std::string(12, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "data_offsets [0, 16] outside the data section (12 bytes)");
  ExpectOpenError(MakeFile("offsets_reversed.safetensors",
                           R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})",
                           std::string(12, '\0')),
                  absl::StatusCode::kInvalidArgument, "data_offsets [8, 4] outside");
}

TEST(SafetensorsTest, TensorsMustTileTheDataSection) {
  // Two tensors sharing bytes used to load, each aliasing the other.
  ExpectOpenError(MakeFile("overlap.safetensors",
                           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           std::string(12, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "tensors 'a' and 'b' overlap (at byte 4 of the data section)");
  ExpectOpenError(MakeFile("same_bytes.safetensors",
                           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                           std::string(8, '\0')),
                  absl::StatusCode::kInvalidArgument, "overlap");
  ExpectOpenError(MakeFile("hole.safetensors",
                           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                           std::string(12, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "bytes [4, 8) of the data section belong to no tensor (before 'b')");
  ExpectOpenError(MakeFile("trailing.safetensors",
                           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                           std::string(9, '\0')),
                  absl::StatusCode::kInvalidArgument,
                  "the data section has 9 bytes but its tensors cover 4");
}

TEST(SafetensorsTest, ByteCountNotMatchingDtypeTimesShape) {
  ExpectOpenError(MakeFile("wrong_count.safetensors",
                           R"({"t":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})",
                           std::string(24, '\0')),
                  absl::StatusCode::kInvalidArgument, "tensor 't': holds 20 bytes but F32 [2, 3] needs 24");
  ExpectOpenError(MakeFile("wrong_count_bf16.safetensors",
                           R"({"t":{"dtype":"BF16","shape":[5],"data_offsets":[0,20]}})",
                           std::string(24, '\0')),
                  absl::StatusCode::kInvalidArgument, "holds 20 bytes but BF16 [5] needs 10");
}

TEST(SafetensorsTest, UnknownDtype) {
  ExpectOpenError(MakeFile("unknown_dtype.safetensors",
                           R"({"t":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})",
                           std::string(2, '\0')),
                  absl::StatusCode::kInvalidArgument, "tensor 't': unknown dtype Q4_K");
}

TEST(SafetensorsTest, NegativeOrNonIntegerDim) {
  ExpectOpenError(MakeFile("negative_dim.safetensors",
                           R"({"t":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,24]}})",
                           std::string(24, '\0')),
                  absl::StatusCode::kInvalidArgument, "tensor 't': shape has a non-integer or negative dim");
  ExpectOpenError(MakeFile("float_dim.safetensors",
                           R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})",
                           std::string(8, '\0')),
                  absl::StatusCode::kInvalidArgument, "non-integer or negative dim");
}

TEST(SafetensorsTest, ShapeTooLarge) {
  ExpectOpenError(MakeFile("huge_shape.safetensors",
                           R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                           std::string(8, '\0')),
                  absl::StatusCode::kInvalidArgument, "shape too large");
}

class SafetensorsReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::vector<int64_t> ids = {1, -2, 3};
    const std::string json =
        R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
        R"("ids":{"dtype":"I64","shape":[3],"data_offsets":[24,48]}})";
    path_ = MakeFile("read.safetensors", json,
                     RawBytes(std::vector<float>{1, 2, 3, 4, 5, 6}) + RawBytes(ids));
    auto file = SafetensorsFile::Open(path_);
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::move(*file);
  }
  std::string path_;
  std::unique_ptr<SafetensorsFile> file_;
};

TEST_F(SafetensorsReadTest, ReadFloatWithWrongShape) {
  const int64_t transposed[] = {3, 2};
  auto values = file_->ReadFloat("w", transposed);
  ASSERT_FALSE(values.ok());
  EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(values.status().message());
  EXPECT_THAT(message, HasSubstr(path_));
  EXPECT_THAT(message, HasSubstr("tensor 'w' has shape [2, 3], expected [3, 2]"));

  const int64_t flat[] = {6};  // same element count, different rank
  auto flat_values = file_->ReadFloat("w", flat);
  EXPECT_EQ(flat_values.status().code(), absl::StatusCode::kInvalidArgument);

  const int64_t right[] = {2, 3};
  auto ok = file_->ReadFloat("w", right);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST_F(SafetensorsReadTest, ReadFloatOfIntegerTensor) {
  auto entry = file_->Get("ids");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->dtype, "I64");
  int64_t second;
  std::memcpy(&second, entry->data + 8, 8);
  EXPECT_EQ(second, -2);

  const int64_t shape[] = {3};
  auto values = file_->ReadFloat("ids", shape);
  ASSERT_FALSE(values.ok());
  EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(values.status().message()),
              HasSubstr("tensor 'ids' has dtype I64; only F32, BF16 and F16 are accepted"));
}

TEST_F(SafetensorsReadTest, MissingNameIsNotFound) {
  auto entry = file_->Get("nope");
  ASSERT_FALSE(entry.ok());
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(entry.status().message()), HasSubstr("no tensor named 'nope'"));
  EXPECT_THAT(std::string(entry.status().message()), HasSubstr(path_));

  const int64_t shape[] = {1};
  EXPECT_EQ(file_->ReadFloat("nope", shape).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ffn
