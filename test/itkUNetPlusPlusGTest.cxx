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

// Unit tests of the LibTorch pieces: the network, the loss, the tensor bridge,
// and what of the model class needs its weights to be checked (averaging).
#include "itkGTest.h"
#include "itkKDBrainExtractionHybridLoss.h"
#include "itkKDBrainExtractionTensorBridge.h"
#include "itkKDBrainExtractionTestUtilities.h"
#include "itkKDBrainExtractionTorchModelImplementation.h"
#include "itkUNetPlusPlus.h"
#include "itksys/SystemTools.hxx"

namespace
{
using itk::UNetPlusPlus;
using itk::UNetPlusPlusOptions;
} // namespace

TEST(UNetPlusPlus, OutputHasTheInputSizeForOddSizes)
{
  torch::manual_seed(0);
  for (const bool deepSupervision : { false, true })
  {
    UNetPlusPlusOptions options;
    options.Depth = 3;
    options.BaseWidth = 2;
    options.DeepSupervision = deepSupervision;
    UNetPlusPlus network(options);
    network->eval();
    torch::NoGradGuard noGrad;
    for (const auto & shape :
         std::vector<std::vector<int64_t>>{ { 1, 1, 17, 23, 29 }, { 2, 1, 9, 8, 11 }, { 1, 1, 8, 8, 8 } })
    {
      const auto output = network->forward(torch::rand(shape));
      EXPECT_EQ(output.sizes().vec(), shape);
      const auto heads = network->ForwardHeads(torch::rand(shape));
      EXPECT_EQ(heads.size(), deepSupervision ? 3u : 1u);
    }
  }
}

TEST(UNetPlusPlus, NestedSkipPathwaysHaveTheExpectedNodes)
{
  UNetPlusPlusOptions options;
  options.Depth = 3;
  options.BaseWidth = 4;
  UNetPlusPlus network(options);
  // (Depth + 1)(Depth + 2)/2 nodes, X(i,j) for i + j <= Depth.
  unsigned int nodes = 0;
  for (const auto & child : network->named_children())
  {
    nodes += child.key().rfind("node_", 0) == 0;
  }
  EXPECT_EQ(nodes, 10u);
  EXPECT_TRUE(network->named_children().contains("node_1_2"));
  EXPECT_FALSE(network->named_children().contains("node_2_2"));
  EXPECT_THROW(UNetPlusPlus(UNetPlusPlusOptions{ 1, 1, 0, 4 }), std::invalid_argument);
}

TEST(UNetPlusPlus, ProgressCallbackCanAbort)
{
  UNetPlusPlusOptions options;
  options.Depth = 2;
  options.BaseWidth = 2;
  UNetPlusPlus        network(options);
  torch::NoGradGuard  noGrad;
  std::vector<double> fractions;
  network->forward(torch::rand({ 1, 1, 8, 8, 8 }), [&fractions](double f) {
    fractions.push_back(f);
    return true;
  });
  ASSERT_EQ(fractions.size(), 6u);
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
  const auto aborted = network->forward(torch::rand({ 1, 1, 8, 8, 8 }), [](double f) { return f < 0.3; });
  EXPECT_FALSE(aborted.defined());
}

TEST(TensorBridge, ItkBufferIsZYXTensor)
{
  const std::array<std::size_t, 3> size{ { 5, 4, 3 } };
  std::vector<float>               buffer(60);
  for (std::size_t z = 0; z < 3; ++z)
  {
    for (std::size_t y = 0; y < 4; ++y)
    {
      for (std::size_t x = 0; x < 5; ++x)
      {
        buffer[x + 5 * (y + 4 * z)] = static_cast<float>(x + 100 * y + 10000 * z);
      }
    }
  }
  const auto tensor = itk::KDBrainExtractionBufferToTensor(buffer.data(), size);
  EXPECT_EQ(tensor.sizes().vec(), (std::vector<int64_t>{ 1, 1, 3, 4, 5 }));
  EXPECT_EQ(tensor[0][0][2][1][4].item<float>(), 4 + 100 * 1 + 10000 * 2);
  EXPECT_EQ(tensor[0][0][0][3][1].item<float>(), 1 + 100 * 3);
  std::vector<float> back(60);
  itk::KDBrainExtractionTensorToBuffer(tensor * 2, back.data());
  EXPECT_EQ(back[4 + 5 * (1 + 4 * 2)], 2.0f * (4 + 100 + 20000));
}

TEST(HybridLoss, HandComputedCases)
{
  const auto mask = (torch::rand({ 1, 1, 16, 16, 16 }, torch::kFloat64) > 0.5).to(torch::kFloat64);
  // Identical: MSE 0, SSIM 1, Dice 1, loss 0.
  auto terms = itk::KDBrainExtractionHybridLoss(mask, mask);
  EXPECT_NEAR(terms.MeanSquaredError.item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(terms.StructuralSimilarity.item<double>(), 1.0, 1e-9);
  EXPECT_NEAR(terms.Dice.item<double>(), 1.0, 1e-9);
  EXPECT_NEAR(terms.Loss.item<double>(), 0.0, 1e-9);
  // Disjoint masks: Dice 0, MSE 1.
  terms = itk::KDBrainExtractionHybridLoss(mask, 1.0 - mask);
  EXPECT_NEAR(terms.Dice.item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(terms.MeanSquaredError.item<double>(), 1.0, 1e-12);
  // A constant shift c: MSE c^2; SSIM of (x, x + c) keeps the structure term
  // at 1 and loses only luminance, so it stays high.
  const auto image = torch::rand({ 1, 1, 16, 16, 16 }, torch::kFloat64);
  terms = itk::KDBrainExtractionHybridLoss(image + 0.1, image);
  EXPECT_NEAR(terms.MeanSquaredError.item<double>(), 0.01, 1e-12);
  EXPECT_LT(terms.StructuralSimilarity.item<double>(), 1.0);
  EXPECT_GT(terms.StructuralSimilarity.item<double>(), 0.85);
  // Soft Dice by hand: p = 0.5 everywhere, t = 1 on half: 2*0.5*n/2 / (0.5 n + n/2) = 0.5.
  const auto half = torch::cat({ torch::ones({ 1, 1, 8, 16, 16 }), torch::zeros({ 1, 1, 8, 16, 16 }) }, 2);
  EXPECT_NEAR(itk::KDBrainExtractionSoftDice(torch::full_like(half, 0.5), half).item<double>(), 0.5, 1e-6);
  // Two empty masks agree.
  EXPECT_NEAR(
    itk::KDBrainExtractionSoftDice(torch::zeros_like(half), torch::zeros_like(half)).item<double>(), 1.0, 1e-9);
}

TEST(HybridLoss, GradientMatchesFiniteDifferences)
{
  torch::manual_seed(1);
  const auto target = torch::rand({ 1, 1, 12, 12, 12 }, torch::kFloat64);
  const auto prediction = torch::rand({ 1, 1, 12, 12, 12 }, torch::kFloat64).requires_grad_(true);
  itk::KDBrainExtractionHybridLoss(prediction, target).Loss.backward();
  const auto   gradient = prediction.grad();
  const double step = 1e-6;
  for (const int64_t index : { 0, 137, 861, 1727 })
  {
    auto plus = prediction.detach().clone();
    auto minus = prediction.detach().clone();
    plus.view(-1)[index] += step;
    minus.view(-1)[index] -= step;
    const double numeric = (itk::KDBrainExtractionHybridLoss(plus, target).Loss.item<double>() -
                            itk::KDBrainExtractionHybridLoss(minus, target).Loss.item<double>()) /
                           (2 * step);
    EXPECT_NEAR(gradient.view(-1)[index].item<double>(), numeric, 1e-6 + 1e-4 * std::abs(numeric)) << "voxel " << index;
  }
}

// Inference folds batch normalisation into the convolutions and calls oneDNN
// directly; it must compute what the modules compute.
TEST(UNetPlusPlus, FoldedInferenceMatchesModules)
{
  for (const std::string normalization : { "batch", "instance", "none" })
  {
    itk::UNetPlusPlusOptions options;
    options.Depth = 2;
    options.BaseWidth = 4;
    options.Normalization = normalization;
    options.DeepSupervision = true;
    torch::manual_seed(3);
    itk::UNetPlusPlus network(options);
    // Running statistics away from their initial values, so that folding matters.
    network->train();
    for (int step = 0; step < 3; ++step)
    {
      network->forward(torch::rand({ 2, 1, 12, 16, 20 }) * 3 + 1);
    }
    network->eval();
    const torch::Tensor input = torch::rand({ 1, 1, 12, 16, 20 });
    const torch::Tensor modules = network->forward(input); // autograd on: the modules' own path
    torch::Tensor       folded;
    {
      torch::NoGradGuard noGrad;
      folded = network->forward(input);
    }
    EXPECT_TRUE(torch::allclose(folded, modules.detach(), 1e-4, 1e-5))
      << normalization << ": max difference " << (folded - modules).abs().max().item<double>();
  }
}

// A model soup is the element-wise mean of its ingredients' weights, whatever
// their order, may be written into one of them, and refuses ingredients that
// cannot be averaged.
TEST(KDBrainExtractionTorchModel, AverageWeightsOfIsTheElementwiseMean)
{
  using itk::KDBrainExtractionTorchModel;
  using RoleEnum = KDBrainExtractionTorchModel::RoleEnum;
  using itk::KDBrainExtractionTesting::MakeTinyModel;
  const std::string directory = itksys::SystemTools::GetCurrentWorkingDirectory() + "/gtest-average";
  itksys::SystemTools::MakeDirectory(directory);
  auto first = MakeTinyModel(RoleEnum::Student, 7);
  auto second = MakeTinyModel(RoleEnum::Student, 8);
  first->Save(directory + "/first.kdbm");
  second->Save(directory + "/second.kdbm");

  auto average = KDBrainExtractionTorchModel::New();
  average->AverageWeightsOf({ first.GetPointer(), second.GetPointer() });
  EXPECT_EQ(average->GetMetadata("average.models"), first->GetChecksum() + "," + second->GetChecksum());
  EXPECT_TRUE(average->GetChecksum().empty());
  const auto  firstWeights = first->GetImplementation().Network->named_parameters(true);
  const auto  secondWeights = second->GetImplementation().Network->named_parameters(true);
  std::size_t compared = 0;
  bool        anyDifferent = false;
  for (const auto & parameter : average->GetImplementation().Network->named_parameters(true))
  {
    const torch::Tensor expected = (firstWeights[parameter.key()] + secondWeights[parameter.key()]) / 2;
    EXPECT_TRUE(torch::allclose(parameter.value(), expected, 0.0, 1e-7)) << parameter.key();
    anyDifferent = anyDifferent || !torch::equal(firstWeights[parameter.key()], secondWeights[parameter.key()]);
    ++compared;
  }
  EXPECT_EQ(compared, firstWeights.size());
  EXPECT_TRUE(anyDifferent) << "the two ingredients should differ";

  // The order does not matter, and the result may replace an ingredient.
  auto reversed = KDBrainExtractionTorchModel::New();
  reversed->AverageWeightsOf({ second.GetPointer(), first.GetPointer() });
  second->AverageWeightsOf({ first.GetPointer(), second.GetPointer() });
  for (const auto & parameter : average->GetImplementation().Network->named_parameters(true))
  {
    EXPECT_TRUE(
      torch::equal(parameter.value(), reversed->GetImplementation().Network->named_parameters(true)[parameter.key()]));
    EXPECT_TRUE(
      torch::equal(parameter.value(), second->GetImplementation().Network->named_parameters(true)[parameter.key()]));
  }

  // One ingredient is itself.
  auto single = KDBrainExtractionTorchModel::New();
  single->AverageWeightsOf({ first.GetPointer() });
  for (const auto & parameter : single->GetImplementation().Network->named_parameters(true))
  {
    EXPECT_TRUE(torch::equal(parameter.value(), firstWeights[parameter.key()])) << parameter.key();
  }

  EXPECT_THROW(average->AverageWeightsOf({}), itk::ExceptionObject);
  auto teacher = MakeTinyModel(RoleEnum::Teacher, 7);
  EXPECT_THROW(average->AverageWeightsOf({ first.GetPointer(), teacher.GetPointer() }), itk::ExceptionObject);
  auto wider = KDBrainExtractionTorchModel::New();
  auto architecture = first->GetArchitecture();
  architecture.BaseWidth = 6;
  wider->Initialize(RoleEnum::Student, architecture, first->GetContract(), 7);
  try
  {
    average->AverageWeightsOf({ first.GetPointer(), wider.GetPointer() });
    ADD_FAILURE() << "models of different widths were averaged";
  }
  catch (const itk::ExceptionObject & error)
  {
    EXPECT_NE(
      std::string(error.GetDescription()).find("a model in memory: cannot be averaged with " + first->GetFileName()),
      std::string::npos)
      << error.GetDescription();
  }
  auto empty = KDBrainExtractionTorchModel::New();
  EXPECT_THROW(average->AverageWeightsOf({ first.GetPointer(), empty.GetPointer() }), itk::ExceptionObject);
}

TEST(KDBrainExtractionTorchModel, InitializeLeavesTheApplicationsRandomNumbersAlone)
{
  using itk::KDBrainExtractionTorchModel;
  using itk::KDBrainExtractionTesting::MakeTinyModel;
  torch::manual_seed(11);
  const torch::Tensor expected = torch::rand({ 8 });
  torch::manual_seed(11);
  const auto          first = MakeTinyModel(KDBrainExtractionTorchModel::RoleEnum::Student, 3);
  const torch::Tensor drawn = torch::rand({ 8 });
  EXPECT_TRUE(torch::equal(expected, drawn)) << "Initialize reseeded LibTorch's generator";
  // And the seed still decides the weights.
  const auto second = MakeTinyModel(KDBrainExtractionTorchModel::RoleEnum::Student, 3);
  auto       parameters = [](const KDBrainExtractionTorchModel * model) {
    std::vector<torch::Tensor> tensors;
    for (const auto & parameter : model->GetImplementation().Network->parameters())
    {
      tensors.push_back(parameter.detach().clone());
    }
    return tensors;
  };
  const auto a = parameters(first);
  const auto b = parameters(second);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
  {
    EXPECT_TRUE(torch::equal(a[i], b[i]));
  }
}
