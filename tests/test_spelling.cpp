// base/spelling: edit distances and the nearest known word behind "did you mean ...?".
#include <gtest/gtest.h>

#include "mmfusion/base/spelling.hpp"

namespace mmfusion {

TEST(Spelling, EditDistanceCountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("train", "train"), 0u);
  EXPECT_EQ(edit_distance("trian", "train"), 2u);  // a swap is two substitutions
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
}

TEST(Spelling, TheNearestWordMustBeNearEnough) {
  const std::vector<std::string> commands{"train", "eval", "predict", "explain", "sweep"};
  EXPECT_EQ(nearest_word("trian", commands), "train");
  EXPECT_EQ(nearest_word("evl", commands), "eval");
  EXPECT_EQ(nearest_word("frobnicate", commands), "");  // far from every command
  EXPECT_EQ(nearest_word("x", {}), "");
  EXPECT_EQ(nearest_word("ab", {"ac", "ad"}), "ac");  // the first of equals
}

}  // namespace mmfusion
