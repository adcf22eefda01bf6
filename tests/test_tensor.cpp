// Tensor: shapes, views (batch slices and channel ranges keep images dense), copies.
#include <catch2/catch.hpp>

#include "engine/error.h"
#include "engine/tensor.h"
#include "tests/test_util.h"

using namespace npcore;

TEST_CASE("tensor storage is 64-byte aligned, zeroed and dense", "[tensor]") {
  Tensor t({2, 3, 5, 7});
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
  CHECK(t.numel() == 210);
  CHECK(t.contiguous());
  CHECK(t.batch_stride() == 105);
  for (int64_t i = 0; i < t.numel(); ++i) REQUIRE(t.data()[i] == 0.0f);
}

TEST_CASE("channel views keep the full image stride and share storage", "[tensor]") {
  Tensor t = test::random_tensor({3, 6, 4, 5}, 1);
  Tensor v = t.channels(2, 3);
  CHECK(v.shape() == Shape{3, 3, 4, 5});
  CHECK(v.batch_stride() == 6 * 20);
  CHECK_FALSE(v.contiguous());
  CHECK(v.image(1) == t.data() + 120 + 40);
  v.fill(7.0f);
  CHECK(t.data()[120 + 40] == 7.0f);
  CHECK(t.data()[120 + 39] != 7.0f);
  Tensor c = v.clone();
  CHECK(c.contiguous());
  CHECK(test::normalised_error(c, v) == 0.0);
}

TEST_CASE("batch views and reshape", "[tensor]") {
  Tensor t = test::random_tensor({4, 2, 3, 3}, 2);
  Tensor b = t.batch(1, 2);
  CHECK(b.shape() == Shape{2, 2, 3, 3});
  CHECK(b.data() == t.data() + 18);
  CHECK(t.reshape({4, 18}).shape() == Shape{4, 18});
  CHECK_THROWS_AS(t.reshape({5, 18}), ShapeError);
  CHECK_THROWS_AS(t.channels(1, 2), ShapeError);
  CHECK_THROWS_AS(t.batch(3, 2), ShapeError);
  CHECK_THROWS_AS(t.channels(0, 1).reshape({4, 9}), ShapeError);
}
