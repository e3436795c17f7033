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
#include "itkGTest.h"
#include "itkTestDriverIncludeRequiredIOFactories.h"

// The unit tests read and write NIfTI, NRRD and MetaImage files. Neither
// build registers image IO for them (ITK's module build never does for a
// GoogleTest driver, and the standalone build takes UseITK's registration out
// of test/ so that both test the same thing), and the library registers none:
// that is the application's choice. The driver registers ITK's test-kernel IO
// once before the first test, as ITK's own GoogleTests do in their fixtures.
namespace
{
class RequiredImageIOEnvironment : public ::testing::Environment
{
public:
  void
  SetUp() override
  {
    RegisterRequiredFactories();
  }
};

const ::testing::Environment * const requiredImageIO =
  ::testing::AddGlobalTestEnvironment(new RequiredImageIOEnvironment);
} // namespace
