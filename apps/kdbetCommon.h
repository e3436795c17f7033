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
// What the kdbet commands share: arguments, reading and checking images,
// writing outputs atomically, and loading models.
#ifndef kdbetCommon_h
#define kdbetCommon_h

#include "itkImageFileReader.h"
#include "itkImageFileWriter.h"
#include "itkKDBrainExtractionInputFile.h"
#include "itkKDBrainExtractionOutputFile.h"
#include "itkKDBrainExtractionTorchModel.h"
#include "itksys/SystemTools.hxx"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

namespace kdbet
{
using ImageType = itk::KDBrainExtractionPreprocessing::ImageType;
using MaskImageType = itk::KDBrainExtractionPreprocessing::MaskImageType;
using ModelType = itk::KDBrainExtractionTorchModel;

/** A user error: printed as one line, exit code 2. */
struct UsageError : std::runtime_error
{
  using std::runtime_error::runtime_error;
};

/** --name value and --flag arguments after the subcommand. */
class Arguments
{
public:
  Arguments(int argc, char * argv[], const std::set<std::string> & flags,
            const std::map<std::string, std::string> & aliases)
  {
    for (int i = 0; i < argc; ++i)
    {
      std::string name = argv[i];
      const auto  alias = aliases.find(name);
      if (alias != aliases.end())
      {
        name = alias->second;
      }
      if (name.rfind("--", 0) != 0)
      {
        throw UsageError("unexpected argument '" + name + "'");
      }
      if (flags.count(name))
      {
        m_Values[name] = "1";
        continue;
      }
      if (i + 1 >= argc)
      {
        throw UsageError("option " + name + " needs a value");
      }
      m_Values[name] = argv[++i];
      m_AllValues[name].push_back(m_Values[name]);
    }
  }
  bool
  Has(const std::string & name) const
  {
    return m_Values.count(name) > 0;
  }
  /** Every value of an option given several times, in order. */
  std::vector<std::string>
  GetAll(const std::string & name) const
  {
    const auto found = m_AllValues.find(name);
    return found == m_AllValues.end() ? std::vector<std::string>() : found->second;
  }
  std::string
  Get(const std::string & name, const std::string & fallback = std::string()) const
  {
    const auto found = m_Values.find(name);
    return found == m_Values.end() ? fallback : found->second;
  }
  double
  GetNumber(const std::string & name, double fallback) const
  {
    if (!Has(name))
    {
      return fallback;
    }
    std::istringstream text(Get(name));
    double             value = 0;
    text >> value;
    if (text.fail() || !text.eof())
    {
      throw UsageError("option " + name + " needs a number, got '" + Get(name) + "'");
    }
    return value;
  }
  unsigned int
  GetCount(const std::string & name, unsigned int fallback) const
  {
    const double value = GetNumber(name, fallback);
    if (value < 0 || value != static_cast<unsigned int>(value))
    {
      throw UsageError("option " + name + " needs a non-negative integer, got '" + Get(name) + "'");
    }
    return static_cast<unsigned int>(value);
  }
  void
  RejectUnknown(const std::set<std::string> & known) const
  {
    for (const auto & entry : m_Values)
    {
      if (!known.count(entry.first))
      {
        throw UsageError("unknown option " + entry.first);
      }
    }
  }

private:
  std::map<std::string, std::string>              m_Values;
  std::map<std::string, std::vector<std::string>> m_AllValues;
};

/** All cores: LibTorch's own default here is one thread (measured: a 2 mm
 * head took 13.6 s with 1 thread, 8.8 s with 2 on a 2-core machine). */
unsigned int
DefaultNumberOfThreads();


ModelType::Pointer
LoadModel(const std::string & fileName, ModelType::RoleEnum role);

/** A mask read as 0/1 floats: voxels >= \a threshold are inside. */
ImageType::Pointer
ReadMaskAsBinary(const std::string & fileName, double threshold);
} // namespace kdbet

#endif // kdbetCommon_h
