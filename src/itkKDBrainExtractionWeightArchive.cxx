/*=========================================================================
 *
 *  Copyright NumFOCUS
 *
 *  Licensed under the Apache License, Version 2.0 (the "License");
 *  you may not use this file except in compliance with the License.
 *  You may obtain a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0.txt
 *
 *  Unless required by applicable law or agreed to in writing, software
 *  distributed under the License is distributed on an "AS IS" BASIS,
 *  WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 *  See the License for the specific language governing permissions and
 *  limitations under the License.
 *
 *=========================================================================*/
#include "itkKDBrainExtractionWeightArchive.h"

#include <caffe2/serialize/inline_container.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace itk
{
namespace
{
/** A pickle value as far as the check needs it: the storage declarations
 * are tuples of strings and integers; everything else is opaque. */
struct PickleValue
{
  enum class Kind
  {
    Opaque,
    Integer,
    Text,
    Tuple
  };
  Kind                                      Type{ Kind::Opaque };
  int64_t                                   Integer{ 0 };
  std::string                               Text;
  std::vector<std::shared_ptr<PickleValue>> Items;
};
using PickleValuePointer = std::shared_ptr<PickleValue>;

/** One storage a pickle declares: the record's key, bytes per element and
 * number of elements. */
struct DeclaredStorage
{
  std::string Key;
  int64_t     ElementBytes{ 0 };
  int64_t     Elements{ 0 };
};

int64_t
StorageElementBytes(const std::string & storageClass)
{
  static const std::map<std::string, int64_t> bytes{ { "torch FloatStorage", 4 }, { "torch DoubleStorage", 8 },
                                                     { "torch HalfStorage", 2 },  { "torch BFloat16Storage", 2 },
                                                     { "torch LongStorage", 8 },  { "torch IntStorage", 4 },
                                                     { "torch ShortStorage", 2 }, { "torch CharStorage", 1 },
                                                     { "torch ByteStorage", 1 },  { "torch BoolStorage", 1 } };
  const auto                                  found = bytes.find(storageClass);
  if (found == bytes.end())
  {
    throw std::runtime_error("a storage of unknown type '" + storageClass + "'");
  }
  return found->second;
}

/** Walks a pickle (protocols 2-4, the opcodes LibTorch's writers use) and
 * returns the storages its persistent ids declare. */
std::vector<DeclaredStorage>
DeclaredStorages(const std::string & pickle)
{
  std::size_t position = 0;
  auto        take = [&](std::size_t count) {
    if (count > pickle.size() - position)
    {
      throw std::runtime_error("the weight pickle is truncated");
    }
    const char * bytes = pickle.data() + position;
    position += count;
    return bytes;
  };
  auto little = [&](std::size_t count) {
    const auto * bytes = reinterpret_cast<const unsigned char *>(take(count));
    uint64_t     value = 0;
    for (std::size_t i = 0; i < count; ++i)
    {
      value |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    }
    return value;
  };
  auto line = [&]() {
    const auto end = pickle.find('\n', position);
    if (end == std::string::npos)
    {
      throw std::runtime_error("the weight pickle is truncated");
    }
    std::string text = pickle.substr(position, end - position);
    position = end + 1;
    return text;
  };

  std::vector<PickleValuePointer>        stack;
  std::vector<std::size_t>               marks;
  std::map<uint64_t, PickleValuePointer> memo;
  std::vector<DeclaredStorage>           storages;
  auto push = [&](PickleValue value) { stack.push_back(std::make_shared<PickleValue>(std::move(value))); };
  auto pop = [&]() {
    if (stack.empty() || (!marks.empty() && stack.size() <= marks.back()))
    {
      throw std::runtime_error("the weight pickle pops an empty stack");
    }
    auto value = stack.back();
    stack.pop_back();
    return value;
  };
  auto popToMark = [&]() {
    if (marks.empty())
    {
      throw std::runtime_error("the weight pickle has no mark");
    }
    std::vector<PickleValuePointer> items(stack.begin() + marks.back(), stack.end());
    stack.resize(marks.back());
    marks.pop_back();
    return items;
  };
  auto opaque = [&]() { push(PickleValue{}); };
  auto tuple = [&](std::vector<PickleValuePointer> items) {
    PickleValue value;
    value.Type = PickleValue::Kind::Tuple;
    value.Items = std::move(items);
    push(std::move(value));
  };
  auto integer = [&](int64_t number) {
    PickleValue value;
    value.Type = PickleValue::Kind::Integer;
    value.Integer = number;
    push(std::move(value));
  };
  auto text = [&](std::string characters) {
    PickleValue value;
    value.Type = PickleValue::Kind::Text;
    value.Text = std::move(characters);
    push(std::move(value));
  };

  while (true)
  {
    const auto opcode = static_cast<unsigned char>(*take(1));
    switch (opcode)
    {
      case 0x80: // PROTO
        take(1);
        break;
      case 0x95: // FRAME
        take(8);
        break;
      case '.': // STOP
        return storages;
      case 'c': // GLOBAL
      {
        const std::string module = line();
        text(module + " " + line());
        break;
      }
      case 'q': // BINPUT
      case 'r': // LONG_BINPUT
        if (stack.empty())
        {
          throw std::runtime_error("the weight pickle memoizes an empty stack");
        }
        memo[little(opcode == 'q' ? 1 : 4)] = stack.back();
        break;
      case 0x94: // MEMOIZE
        if (stack.empty())
        {
          throw std::runtime_error("the weight pickle memoizes an empty stack");
        }
        memo[memo.size()] = stack.back();
        break;
      case 'h': // BINGET
      case 'j': // LONG_BINGET
      {
        const auto found = memo.find(little(opcode == 'h' ? 1 : 4));
        if (found == memo.end())
        {
          throw std::runtime_error("the weight pickle refers to an unknown memo entry");
        }
        stack.push_back(found->second);
        break;
      }
      case '(': // MARK
        marks.push_back(stack.size());
        break;
      case ')': // EMPTY_TUPLE
        tuple({});
        break;
      case 't': // TUPLE
        tuple(popToMark());
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: // TUPLE3
      {
        std::vector<PickleValuePointer> items(opcode - 0x84);
        for (auto item = items.rbegin(); item != items.rend(); ++item)
        {
          *item = pop();
        }
        tuple(std::move(items));
        break;
      }
      case '}':  // EMPTY_DICT
      case ']':  // EMPTY_LIST
      case 'N':  // NONE
      case 0x88: // NEWTRUE
      case 0x89: // NEWFALSE
        opaque();
        break;
      case 'J': // BININT
        integer(static_cast<int32_t>(little(4)));
        break;
      case 'K': // BININT1
        integer(static_cast<int64_t>(little(1)));
        break;
      case 'M': // BININT2
        integer(static_cast<int64_t>(little(2)));
        break;
      case 0x8a: // LONG1
      {
        const auto count = little(1);
        if (count > 8)
        {
          throw std::runtime_error("the weight pickle has an integer of more than 64 bits");
        }
        uint64_t value = count ? little(count) : 0;
        if (count > 0 && count < 8 && (value >> (8 * count - 1)) & 1)
        {
          value |= ~uint64_t{ 0 } << (8 * count); // sign extension
        }
        integer(static_cast<int64_t>(value));
        break;
      }
      case 'G': // BINFLOAT
        take(8);
        opaque();
        break;
      case 'X':  // BINUNICODE
      case 0x8c: // SHORT_BINUNICODE
      {
        const auto length = little(opcode == 'X' ? 4 : 1);
        text(std::string(take(length), length));
        break;
      }
      case 'B': // BINBYTES
      case 'C': // SHORT_BINBYTES
        take(little(opcode == 'B' ? 4 : 1));
        opaque();
        break;
      case 'R':  // REDUCE
      case 0x81: // NEWOBJ
        pop();
        pop();
        opaque();
        break;
      case 'b': // BUILD
        pop();
        break;
      case 's': // SETITEM
        pop();
        pop();
        break;
      case 'a': // APPEND
        pop();
        break;
      case 'u': // SETITEMS
      case 'e': // APPENDS
        popToMark();
        break;
      case 'Q': // BINPERSID
      {
        const auto id = pop();
        if (id->Type != PickleValue::Kind::Tuple || id->Items.size() != 5 ||
            id->Items[0]->Type != PickleValue::Kind::Text || id->Items[0]->Text != "storage" ||
            id->Items[1]->Type != PickleValue::Kind::Text || id->Items[2]->Type != PickleValue::Kind::Text ||
            id->Items[4]->Type != PickleValue::Kind::Integer || id->Items[4]->Integer < 0)
        {
          throw std::runtime_error("the weight pickle has a persistent id that is not a storage");
        }
        storages.push_back({ id->Items[2]->Text, StorageElementBytes(id->Items[1]->Text), id->Items[4]->Integer });
        opaque();
        break;
      }
      default:
      {
        std::ostringstream message;
        message << "the weight pickle has opcode 0x" << std::hex << static_cast<int>(opcode)
                << ", which LibTorch's writer does not use";
        throw std::runtime_error(message.str());
      }
    }
  }
}
} // namespace

void
CheckWeightArchive(const std::string & payload)
{
  std::istringstream                     stream(payload, std::ios::binary);
  caffe2::serialize::PyTorchStreamReader reader(&stream);
  if (!reader.hasRecord("data.pkl"))
  {
    throw std::runtime_error("the weight archive has no data.pkl");
  }
  const auto        pickleRecord = reader.getRecord("data.pkl");
  const auto &      pickleData = std::get<0>(pickleRecord);
  const std::string pickle(static_cast<const char *>(pickleData.get()), std::get<1>(pickleRecord));
  for (const auto & storage : DeclaredStorages(pickle))
  {
    // Element counts beyond this cannot be genuine and would overflow the product.
    if (storage.Elements > (int64_t{ 1 } << 40))
    {
      throw std::runtime_error("storage '" + storage.Key + "' declares " + std::to_string(storage.Elements) +
                               " elements");
    }
    if (storage.Elements == 0)
    {
      continue; // LibTorch reads no record for an empty storage
    }
    const std::string record = "data/" + storage.Key;
    const std::size_t needed = static_cast<std::size_t>(storage.Elements * storage.ElementBytes);
    const std::size_t recorded = reader.hasRecord(record) ? std::get<1>(reader.getRecord(record)) : 0;
    if (recorded < needed)
    {
      throw std::runtime_error("weight record '" + record + "' has " + std::to_string(recorded) +
                               " bytes, its storage declares " + std::to_string(needed));
    }
  }
}
} // namespace itk
