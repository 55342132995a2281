/* mlipdrive: pair_style mlipdrive for LAMMPS, as a plugin.
 * Copyright (C) 2025 the mlipdrive developers. GPL-2.0-only; see LICENSE.
 *
 * Text <-> value helpers for the generated settings code: the words and kinds
 * they accept come from mlipdrive.settings (ON_OFF_WORDS, FUSION_KINDS, through
 * the generated mlipdrive_settings.h); values print as Python's repr(), so that
 * `mlipdrive info` and the plugin print identical tables.
 */
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iterator>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "mlipdrive_settings.h"

namespace mlipdrive {

inline std::string lower_case(const std::string& text) {
    std::string lower;
    for (char c: text) {
        lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return lower;
}

inline std::string parse_bool(const std::string& name, const std::string& text, bool& value) {
    const std::string lower = lower_case(text);
    for (const auto& word: ON_OFF_WORDS) {
        if (lower == word.first) {
            value = word.second;
            return "";
        }
    }
    return "expected on/off for setting '" + name + "', got '" + text + "'";
}

inline std::string parse_int(const std::string& name, const std::string& text, int& value) {
    char* end = nullptr;
    long parsed = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || end == nullptr || *end != '\0') {
        return "expected an int for setting '" + name + "', got '" + text + "'";
    }
    value = static_cast<int>(parsed);
    return "";
}

inline std::string parse_double(const std::string& name, const std::string& text, double& value) {
    char* end = nullptr;
    double parsed = std::strtod(text.c_str(), &end);
    if (text.empty() || end == nullptr || *end != '\0') {
        return "expected a float for setting '" + name + "', got '" + text + "'";
    }
    value = parsed;
    return "";
}

inline std::string parse_string(
    const std::string& name,
    const std::string& text,
    const std::vector<std::string>& choices,
    std::string& value
) {
    if (!choices.empty()) {
        bool found = false;
        std::string list;
        for (const auto& choice: choices) {
            found = found || choice == text;
            list += (list.empty() ? "" : ", ") + choice;
        }
        if (!found) {
            return "setting '" + name + "' must be one of [" + list + "], got '" + text + "'";
        }
    }
    value = text;
    return "";
}

/// 'STATIC:2,DYNAMIC:10' -> {("STATIC", 2), ("DYNAMIC", 10)}; returns false if malformed
inline bool parse_fusion_strategy(
    const std::string& text, std::vector<std::pair<std::string, int>>& strategy
) {
    strategy.clear();
    if (text.empty()) {
        return true;
    }
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        auto item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        auto colon = item.find(':');
        if (colon == std::string::npos) {
            return false;
        }
        auto kind = item.substr(0, colon);
        auto depth = item.substr(colon + 1);
        if (std::find(std::begin(FUSION_KINDS), std::end(FUSION_KINDS), kind) == std::end(FUSION_KINDS) ||
            depth.empty()) {
            return false;
        }
        for (char c: depth) {
            if (c < '0' || c > '9') {
                return false;
            }
        }
        strategy.emplace_back(kind, std::atoi(depth.c_str()));
        if (comma == std::string::npos) {
            break;
        }
        start = comma + 1;
    }
    return true;
}

inline std::string python_repr(bool value) {
    return value ? "True" : "False";
}

inline std::string python_repr(int value) {
    return std::to_string(value);
}

inline std::string python_repr(double value) {
    if (std::isnan(value)) {
        return "nan";
    }
    if (std::isinf(value)) {
        return value > 0 ? "inf" : "-inf";
    }
    // shortest text that reads back to the same double, like Python's repr
    char buffer[64];
    for (int precision = 1; precision <= 17; precision++) {
        std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
        if (std::strtod(buffer, nullptr) == value) {
            break;
        }
    }
    std::string text = buffer;
    if (text.find_first_of(".e") == std::string::npos) {
        text += ".0";
    }
    return text;
}

inline std::string python_repr(const std::string& value) {
    return "'" + value + "'";
}

}  // namespace mlipdrive
